//! Phase 1 of resolution: merging a TrainJob's `runtimePatches` into a copy of
//! the runtime's JobSet template.
//!
//! Maps merge key by key; lists of named things (containers, env, volumes,
//! image pull secrets, scheduling gates) merge entry by entry on their key;
//! other lists (tolerations, …) are replaced, as server-side apply treats
//! atomic lists. A patch naming a replicated job or container the runtime
//! does not have targets nothing and is an error.

use serde_json::{Map, Value};

use super::unlaunchable;
use crate::Result;
use crate::jobset::JobSetTemplate;
use crate::trainjob::TrainJob;

/// Applies every runtime patch of `job`, in order, to `template`. O(patch size × template size).
pub(crate) fn apply_runtime_patches(job: &TrainJob, template: &mut JobSetTemplate) -> Result<()> {
    let patches = job.spec.as_ref().and_then(|s| s.runtime_patches.as_deref()).unwrap_or(&[]);
    for (p, patch) in patches.iter().enumerate() {
        let Some(patch_template) = patch.training_runtime_spec.as_ref().and_then(|s| s.template.as_ref()) else {
            continue;
        };
        let base = format!("spec.runtimePatches[{p}].trainingRuntimeSpec.template");
        if let (Some(meta), Some(target)) = (&patch_template.metadata, template.metadata.as_mut()) {
            merge_meta(target, meta);
        } else if let Some(meta) = &patch_template.metadata {
            template.metadata = Some(meta.clone());
        }
        let jobs = patch_template.spec.as_ref().and_then(|s| s.replicated_jobs.as_deref()).unwrap_or(&[]);
        for (j, patch_job) in jobs.iter().enumerate() {
            let at = format!("{base}.spec.replicatedJobs[{j}]");
            let runtime_jobs = template.spec.as_mut().and_then(|s| s.replicated_jobs.as_mut());
            let Some(target) = runtime_jobs.and_then(|jobs| jobs.iter_mut().find(|t| t.name == patch_job.name)) else {
                return Err(unlaunchable(
                    format!("{at}.name"),
                    format!("the runtime has no replicated job named {:?}: the patch targets nothing", patch_job.name),
                ));
            };
            let Some(patch_job_template) = &patch_job.template else { continue };
            let target_template = target.template.get_or_insert_with(Default::default);
            if let Some(meta) = &patch_job_template.metadata {
                merge_meta(target_template.metadata.get_or_insert_with(Default::default), meta);
            }
            let Some(patch_pod) = patch_job_template.spec.as_ref().and_then(|s| s.template.as_ref()) else { continue };
            let target_pod =
                target_template.spec.get_or_insert_with(Default::default).template.get_or_insert_with(Default::default);
            if let Some(meta) = &patch_pod.metadata {
                merge_meta(target_pod.metadata.get_or_insert_with(Default::default), meta);
            }
            if let Some(Value::Object(patch_spec)) = &patch_pod.spec {
                let at = format!("{at}.template.spec.template.spec");
                let target_spec = target_pod.spec.get_or_insert_with(|| Value::Object(Map::new()));
                for list in ["containers", "initContainers"] {
                    for (c, container) in
                        patch_spec.get(list).and_then(Value::as_array).into_iter().flatten().enumerate()
                    {
                        let name = container.get("name");
                        let exists = target_spec
                            .get(list)
                            .and_then(Value::as_array)
                            .is_some_and(|cs| cs.iter().any(|t| t.get("name") == name));
                        if !exists {
                            return Err(unlaunchable(
                                format!("{at}.{list}[{c}].name"),
                                format!(
                                    "replicated job {:?} has no container named {}: the patch targets nothing",
                                    patch_job.name,
                                    name.unwrap_or(&Value::Null)
                                ),
                            ));
                        }
                    }
                }
                merge(target_spec, &Value::Object(patch_spec.clone()), "");
            }
        }
    }
    Ok(())
}

fn merge_meta(target: &mut crate::meta::ObjectMeta, patch: &crate::meta::ObjectMeta) {
    for (mine, theirs) in [(&mut target.labels, &patch.labels), (&mut target.annotations, &patch.annotations)] {
        if let Some(theirs) = theirs {
            mine.get_or_insert_with(Default::default).extend(theirs.clone());
        }
    }
}

/// The key a list of objects merges on, by field name; `None`: atomic list.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers" | "initContainers" | "env" | "volumes" | "imagePullSecrets" | "schedulingGates" | "ports" => {
            Some("name")
        }
        "volumeMounts" => Some("mountPath"),
        _ => None,
    }
}

/// Merges `patch` into `target`: objects key by key, keyed lists entry by
/// entry, everything else replaced.
pub(crate) fn merge(target: &mut Value, patch: &Value, field: &str) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing) => merge(existing, v, k),
                    None => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(t), Value::Array(p)) if merge_key(field).is_some() => {
            let key = merge_key(field).unwrap_or("name");
            for item in p {
                match t.iter_mut().find(|e| e.get(key).is_some() && e.get(key) == item.get(key)) {
                    Some(existing) => merge(existing, item, ""),
                    None => t.push(item.clone()),
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}
