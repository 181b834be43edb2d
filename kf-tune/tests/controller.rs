//! The Experiment reconciler's API conversation (feature `controller`),
//! against kube's mock service.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use kf_tune::controller::api_resource;

#[test]
fn trial_kinds_map_to_their_plural_resources() {
    assert_eq!(api_resource("kubeflow.org/v1beta1", "Experiment").plural, "experiments");
    assert_eq!(api_resource("batch/v1", "Job").plural, "jobs");
    assert_eq!(api_resource("trainer.kubeflow.org/v1alpha1", "TrainJob").plural, "trainjobs");
}
