//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's
//! leaderelection does it: the leader renews `renewTime` well within
//! `leaseDurationSeconds`; a candidate takes the Lease only once it has
//! expired; every write carries the `resourceVersion` it read, so of two
//! candidates racing for one Lease the API server lets exactly one win
//! (the other gets 409 and stays a follower).
//!
//! [`decide`] is the whole policy, pure; [`Elector`] does the IO.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;

/// What a candidate does with the Lease it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// There is none: create it, holding it.
    Create,
    /// Nobody holds it, or the holder let it expire: take it over.
    Take,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds it and is renewing it: wait.
    Follow {
        /// Who leads.
        holder: String,
    },
}

/// The decision for candidate `me` at `now` given the Lease's spec (`None`:
/// no Lease). A Lease without a renew time or duration counts as expired.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else { return Decision::Create };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder == me {
        return Decision::Renew;
    }
    let expires = match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(MicroTime(renewed)), Some(seconds)) => {
            renewed.checked_add(SignedDuration::from_secs(i64::from(seconds))).unwrap_or(*renewed)
        }
        _ => now,
    };
    if holder.is_empty() || expires <= now { Decision::Take } else { Decision::Follow { holder: holder.to_owned() } }
}

/// The spec to write for `decision` (not `Follow`).
pub fn next_spec(
    current: Option<&LeaseSpec>,
    decision: &Decision,
    me: &str,
    now: Timestamp,
    seconds: i32,
) -> LeaseSpec {
    let transitions = current.and_then(|s| s.lease_transitions).unwrap_or(0);
    match decision {
        Decision::Renew => LeaseSpec {
            renew_time: Some(MicroTime(now)),
            lease_duration_seconds: Some(seconds),
            ..current.cloned().unwrap_or_default()
        },
        Decision::Create | Decision::Take | Decision::Follow { .. } => LeaseSpec {
            holder_identity: Some(me.to_owned()),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_duration_seconds: Some(seconds),
            lease_transitions: Some(if matches!(decision, Decision::Create) { 0 } else { transitions + 1 }),
            ..LeaseSpec::default()
        },
    }
}

/// A candidate for one Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    me: String,
    seconds: i32,
}

impl Elector {
    /// Candidate `me` for Lease `name` (read and written through `api`),
    /// holding it for `seconds` per renewal.
    pub fn new(api: Api<Lease>, name: &str, me: &str, seconds: i32) -> Self {
        Elector { api, name: name.to_owned(), me: me.to_owned(), seconds }
    }

    /// One round: read the Lease, then create, take over or renew it as
    /// [`decide`] says. `Ok(true)` while we lead; a lost race (409) is
    /// `Ok(false)`; other API errors are errors.
    pub async fn try_lead(&self) -> Result<bool, kube::Error> {
        let lease = self.api.get_opt(&self.name).await?;
        let now = Timestamp::now();
        let decision = decide(lease.as_ref().and_then(|l| l.spec.as_ref()), &self.me, now);
        let written = match (&decision, lease) {
            (Decision::Follow { .. }, _) => return Ok(false),
            (_, None) => {
                let spec = next_spec(None, &decision, &self.me, now, self.seconds);
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await.map(|_| ())
            }
            (_, Some(mut lease)) => {
                // Replace carries the resourceVersion read above: a concurrent writer makes it 409.
                lease.spec = Some(next_spec(lease.spec.as_ref(), &decision, &self.me, now, self.seconds));
                self.api.replace(&self.name, &PostParams::default(), &lease).await.map(|_| ())
            }
        };
        match written {
            Ok(()) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up (clears the holder) so another replica need not
    /// wait for it to expire. Only when we still hold it.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else { return Ok(()) };
        let ours = lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(self.me.as_str());
        if ours && let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            self.api.replace(&self.name, &PostParams::default(), &lease).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn held(by: &str, renewed: i64, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(by.into()),
            renew_time: Some(MicroTime(at(renewed))),
            lease_duration_seconds: Some(seconds),
            lease_transitions: Some(2),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_candidate_creates_takes_renews_or_follows() {
        assert_eq!(decide(None, "a", at(0)), Decision::Create);
        assert_eq!(decide(Some(&held("a", 0, 15)), "a", at(100)), Decision::Renew);
        assert_eq!(decide(Some(&held("b", 0, 15)), "a", at(10)), Decision::Follow { holder: "b".into() });
        assert_eq!(decide(Some(&held("b", 0, 15)), "a", at(15)), Decision::Take);
        assert_eq!(decide(Some(&held("", 0, 15)), "a", at(1)), Decision::Take);
        assert_eq!(
            decide(Some(&LeaseSpec { holder_identity: Some("b".into()), ..Default::default() }), "a", at(0)),
            Decision::Take
        );
        let taken = next_spec(Some(&held("b", 0, 15)), &Decision::Take, "a", at(20), 15);
        assert_eq!((taken.holder_identity.as_deref(), taken.lease_transitions), (Some("a"), Some(3)));
        let renewed = next_spec(Some(&held("a", 0, 15)), &Decision::Renew, "a", at(5), 15);
        assert_eq!((renewed.renew_time, renewed.lease_transitions), (Some(MicroTime(at(5))), Some(2)));
    }

    proptest! {
        /// Nobody takes a Lease another holder renewed less than its duration ago.
        #[test]
        fn a_fresh_lease_is_never_taken(renewed in 0i64..1000, seconds in 1i32..60, elapsed in 0i64..2000) {
            let decision = decide(Some(&held("b", renewed, seconds)), "a", at(renewed + elapsed));
            prop_assert_eq!(elapsed < i64::from(seconds), matches!(decision, Decision::Follow { .. }));
        }
    }

    /// Serves one scripted exchange per call: asserts method and path, answers.
    async fn expect(
        handle: &mut tower_test::mock::Handle<Request<Body>, Response<Body>>,
        method: &str,
        path: &str,
        status: u16,
        reply: Value,
    ) -> Value {
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!((request.method().as_str(), request.uri().path()), (method, path));
        let body = request.into_body().collect_bytes().await.expect("body");
        let sent: Value = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).expect("JSON") };
        let response =
            Response::builder().status(status).body(Body::from(serde_json::to_vec(&reply).unwrap_or_default()));
        send.send_response(response.expect("a response"));
        sent
    }

    fn not_found() -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
    }

    fn conflict() -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "the object has been modified"})
    }

    const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/kf/leases/kf-operator";
    const COLLECTION: &str = "/apis/coordination.k8s.io/v1/namespaces/kf/leases";

    fn elector() -> (Elector, tower_test::mock::Handle<Request<Body>, Response<Body>>) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "kf");
        (Elector::new(Api::namespaced(client, "kf"), "kf-operator", "pod-a", 15), handle)
    }

    #[tokio::test]
    async fn the_first_candidate_creates_the_lease_and_leads() {
        let (elector, mut handle) = elector();
        let server = tokio::spawn(async move {
            expect(&mut handle, "GET", PATH, 404, not_found()).await;
            let created = expect(&mut handle, "POST", COLLECTION, 201, json!({})).await;
            assert_eq!(created["spec"]["holderIdentity"], "pod-a");
            assert_eq!(created["spec"]["leaseDurationSeconds"], 15);
            assert_eq!(created["metadata"]["name"], "kf-operator");
        });
        assert!(elector.try_lead().await.expect("no API error"));
        server.await.expect("the conversation");
    }

    #[tokio::test]
    async fn a_fresh_lease_of_another_is_left_alone_and_a_lost_race_is_a_follower() {
        let (elector, mut handle) = elector();
        let fresh = json!({"metadata": {"name": "kf-operator", "resourceVersion": "7"},
                           "spec": {"holderIdentity": "pod-b", "renewTime": Timestamp::now().to_string(), "leaseDurationSeconds": 15}});
        let server = tokio::spawn(async move {
            expect(&mut handle, "GET", PATH, 200, fresh).await;
            // The next round finds it expired, but another candidate wrote first.
            let stale = json!({"metadata": {"name": "kf-operator", "resourceVersion": "8"},
                               "spec": {"holderIdentity": "pod-b", "renewTime": "2020-01-01T00:00:00Z", "leaseDurationSeconds": 15, "leaseTransitions": 4}});
            expect(&mut handle, "GET", PATH, 200, stale).await;
            let replaced = expect(&mut handle, "PUT", PATH, 409, conflict()).await;
            assert_eq!(replaced["metadata"]["resourceVersion"], "8", "the write is conditional on what was read");
            assert_eq!(replaced["spec"]["holderIdentity"], "pod-a");
            assert_eq!(replaced["spec"]["leaseTransitions"], 5);
        });
        assert!(!elector.try_lead().await.expect("following is not an error"));
        assert!(!elector.try_lead().await.expect("a lost race is not an error"));
        server.await.expect("the conversation");
    }

    #[tokio::test]
    async fn the_leader_renews_and_releases_its_lease() {
        let (elector, mut handle) = elector();
        let ours = json!({"metadata": {"name": "kf-operator", "resourceVersion": "3"},
                          "spec": {"holderIdentity": "pod-a", "renewTime": "2020-01-01T00:00:00Z", "leaseDurationSeconds": 15, "leaseTransitions": 1}});
        let server = tokio::spawn(async move {
            expect(&mut handle, "GET", PATH, 200, ours.clone()).await;
            let renewed = expect(&mut handle, "PUT", PATH, 200, ours.clone()).await;
            assert_eq!(
                (renewed["spec"]["holderIdentity"].clone(), renewed["spec"]["leaseTransitions"].clone()),
                (json!("pod-a"), json!(1))
            );
            assert_ne!(renewed["spec"]["renewTime"], "2020-01-01T00:00:00Z");
            expect(&mut handle, "GET", PATH, 200, ours.clone()).await;
            let released = expect(&mut handle, "PUT", PATH, 200, ours).await;
            assert!(released["spec"]["holderIdentity"].is_null(), "{released}");
            // A 500 is an error, not a silent follower.
            expect(
                &mut handle,
                "GET",
                PATH,
                500,
                json!({"kind": "Status", "code": 500, "message": "etcd down", "status": "Failure"}),
            )
            .await;
        });
        assert!(elector.try_lead().await.expect("renewed"));
        elector.release().await.expect("released");
        assert!(elector.try_lead().await.is_err());
        server.await.expect("the conversation");
    }
}
