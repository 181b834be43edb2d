//! `kf tenancy`: profiles and contributors on a SQLite store, decided by the
//! kf-tenancy authorizer, across separate invocations.

use std::process::{Command, Output};

struct Kf {
    db: tempfile::TempDir,
}

impl Kf {
    fn new() -> Self {
        Kf { db: tempfile::tempdir().expect("tempdir") }
    }

    /// Runs `kf tenancy` with whitespace-separated arguments.
    fn cmd(&self, line: &str) -> Output {
        self.run(&line.split_whitespace().collect::<Vec<_>>())
    }

    fn run(&self, args: &[&str]) -> Output {
        let db = self.db.path().join("tenancy.db");
        Command::new(env!("CARGO_BIN_EXE_kf"))
            .arg("tenancy")
            .arg("--db")
            .arg(&db)
            .args(args)
            .env_remove("KF_CLUSTER_ADMINS")
            .output()
            .expect("kf runs")
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn owners_grant_contributors_who_cannot_raise_themselves() {
    let kf = Kf::new();
    let out = kf.cmd("profile create team-a --owner alice@example.com");
    assert!(out.status.success(), "{}", text(&out));

    let out = kf.cmd("profile add-contributor team-a --user bob@example.com --role edit --as alice@example.com");
    assert!(out.status.success(), "{}", text(&out));

    // bob is edit: he can write runs, but not grant anything, least of all admin to himself (kubeflow#7223)
    let out = kf.cmd("check --user bob@example.com --namespace team-a --verb create --resource runs");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).starts_with("allowed"), "{}", text(&out));
    let out = kf.cmd("profile add-contributor team-a --user bob@example.com --role admin --as bob@example.com");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("forbidden"), "{}", text(&out));
    let out = kf.cmd("check --user bob@example.com --namespace team-a --verb create --resource bindings");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    let out = kf.cmd("--output json profile list");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(list[0]["profile"], "team-a");
    assert_eq!(list[0]["contributors"][0]["role"], "edit");

    let out = kf.cmd("profile remove-contributor team-a --user bob@example.com --as alice@example.com");
    assert!(out.status.success(), "{}", text(&out));
    let out = kf.cmd("check --user bob@example.com --namespace team-a --verb get --resource runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no role in this namespace"), "{}", text(&out));
}

#[test]
fn profiles_come_from_manifests_and_cannot_be_taken_over() {
    let kf = Kf::new();
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/profiles/components__profile-controller__manifests__kustomize__samples___v1_profile.yaml"
    );
    let out = kf.run(&["profile", "create", "--file", manifest]);
    assert!(out.status.success(), "{}", text(&out));
    let out = kf.cmd("profile create test-user-profile --owner mallory@example.com");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("already exists"), "{}", text(&out));
    let out =
        kf.cmd("check --user test-user@kubeflow.org --namespace test-user-profile --verb delete --resource bindings");
    assert!(out.status.success(), "the owner administers the namespace: {}", text(&out));
}

#[test]
fn cluster_admins_come_from_configuration_and_bad_input_is_named() {
    let kf = Kf::new();
    let out = kf.cmd("--cluster-admin group:platform check --user ops --group platform --namespace anything --verb delete --resource runs");
    assert!(out.status.success(), "{}", text(&out));
    let out = kf.cmd("check --user u --namespace n --verb explode --resource runs");
    assert_eq!(out.status.code(), Some(2), "clap rejects an unknown verb");
    assert!(text(&out).contains("explode"), "{}", text(&out));
    let out = kf.cmd("profile add-contributor nowhere --user x --role view --as nobody");
    assert_eq!(out.status.code(), Some(1));
    assert!(!text(&out).contains("panicked"));
}

#[test]
fn render_prints_the_objects_with_contributors_from_the_store() {
    let kf = Kf::new();
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/profiles/components__profile-controller__manifests__kustomize__samples___v1_profile.yaml"
    );
    assert!(kf.run(&["profile", "create", "--file", manifest]).status.success());
    let out = kf.cmd(
        "profile add-contributor test-user-profile --user bob@example.com --role view --as test-user@kubeflow.org",
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = kf.run(&["render", manifest]);
    assert!(out.status.success(), "{}", text(&out));
    let objects: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).expect("YAML");
    assert_eq!(objects[0]["kind"], "Namespace");
    assert!(objects.iter().any(|o| o["metadata"]["name"] == "user-bob-example-com-clusterrole-kubeflow-view"));
    let simple = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/profiles/components__profile-controller__integration__resources__profile-simple.yaml"
    );
    let out = kf.run(&["render", simple]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("metadata.name"), "{}", text(&out));
}
