//! The authorizer: a pure decision over an in-memory [`Policy`].
//!
//! A decision needs no IO: the policy (namespace owners, bindings, cluster
//! admins and the role table) is plain data, loaded from a
//! [`PolicyStore`](crate::PolicyStore) and kept current by whoever changes it.
//! Everything is denied unless a rule allows it, and every decision carries
//! the reason, for logs and for `kf tenancy check`.

use std::collections::{HashMap, HashSet};
use std::fmt;

/// The hasher of the policy index. Every request hashes a namespace (and,
/// for contributors, a user and their groups) here: SipHash costs more than
/// the rest of the lookup on keys this short. foldhash is seeded (per process
/// and per map), so the keys, which come from profiles and bindings, cannot be
/// chosen to collide; requests only look keys up.
type Hasher = foldhash::fast::RandomState;

use crate::role::{BINDINGS, Role, RoleTable, Verb};
use crate::subject::{Identity, Principal, Subject};

/// One access question: may this identity apply this verb to this kind of
/// resource in this namespace?
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Who is asking.
    pub identity: &'a Identity,
    /// The namespace the resource lives in.
    pub namespace: &'a str,
    /// What they want to do.
    pub verb: Verb,
    /// The kind of resource, e.g. `runs`, `models`, `inferenceservices`.
    pub resource: &'a str,
}

/// The answer, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Why.
    pub reason: Reason,
}

/// Why a decision went the way it did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The identity is a configured cluster admin.
    ClusterAdmin,
    /// The identity owns the namespace's profile (admin rights).
    Owner,
    /// A binding grants a role whose rules allow the request.
    Granted {
        /// The role that allowed it.
        role: Role,
        /// The subject the role is bound to (the user, or one of their groups).
        via: Subject,
    },
    /// No role in the namespace. Deliberately the same for namespaces that do
    /// not exist, so denials never reveal what exists.
    NoRole,
    /// The identity's strongest role does not allow this verb on this resource.
    RoleForbids {
        /// The identity's strongest role.
        role: Role,
    },
    /// Nobody may grant a role above their own.
    AboveOwnRole {
        /// The role asked for.
        requested: Role,
        /// The actor's own role.
        own: Role,
    },
    /// The owner's access comes from the profile and cannot be changed by a binding.
    OwnerIsFixed,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::ClusterAdmin => write!(f, "cluster admin"),
            Reason::Owner => write!(f, "owner of the namespace"),
            Reason::Granted { role, via } => write!(f, "role {role} granted to {via}"),
            Reason::NoRole => write!(f, "no role in this namespace"),
            Reason::RoleForbids { role } => write!(f, "role {role} does not allow this"),
            Reason::AboveOwnRole { requested, own } => {
                write!(f, "cannot grant role {requested}: above own role {own}")
            }
            Reason::OwnerIsFixed => write!(f, "the owner's access is set by the profile, not by bindings"),
        }
    }
}

/// Who may do what in one namespace.
#[derive(Debug, Clone, Default)]
struct NamespaceAccess {
    owner: Option<Subject>,
    /// Keyed by user name (service accounts in `system:serviceaccount:` form).
    users: HashMap<String, (Subject, Role), Hasher>,
    groups: HashMap<String, Role, Hasher>,
}

/// The whole access policy, indexed for decisions in O(groups of the caller).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    roles: RoleTable,
    admin_users: HashSet<String, Hasher>,
    admin_groups: HashSet<String, Hasher>,
    namespaces: HashMap<String, NamespaceAccess, Hasher>,
}

/// How an identity holds its strongest role in a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Cluster admin: everything everywhere.
    ClusterAdmin,
    /// Owner of the namespace.
    Owner,
    /// A contributor with a role.
    Contributor {
        /// The strongest role held.
        role: Role,
        /// The subject that role is bound to.
        via: Subject,
    },
}

impl Standing {
    /// The effective role (owners and cluster admins are admins).
    pub fn role(&self) -> Role {
        match self {
            Standing::ClusterAdmin | Standing::Owner => Role::Admin,
            Standing::Contributor { role, .. } => *role,
        }
    }
}

impl Policy {
    /// An empty policy (denies everything) with the given role table.
    pub fn new(roles: RoleTable) -> Self {
        Policy { roles, ..Policy::default() }
    }

    /// The role table in use.
    pub fn roles(&self) -> &RoleTable {
        &self.roles
    }

    /// Makes a user or group a cluster admin (service accounts by user name).
    pub fn add_cluster_admin(&mut self, subject: &Subject) {
        match subject {
            Subject::Group(group) => self.admin_groups.insert(group.clone()),
            other => self.admin_users.insert(other.user_name().unwrap_or_default()),
        };
    }

    /// Registers a namespace and its owner (from a Profile). Keeps existing bindings.
    pub fn set_owner(&mut self, namespace: &str, owner: Subject) {
        self.namespaces.entry(namespace.to_string()).or_default().owner = Some(owner);
    }

    /// Forgets a namespace and every binding in it.
    pub fn remove_namespace(&mut self, namespace: &str) -> bool {
        self.namespaces.remove(namespace).is_some()
    }

    /// Whether the namespace is known.
    pub fn has_namespace(&self, namespace: &str) -> bool {
        self.namespaces.contains_key(namespace)
    }

    /// Binds `subject` to `role` in `namespace`, replacing an earlier binding of
    /// the same subject. Call [`Policy::decide_grant`] first: this only records.
    pub fn bind(&mut self, namespace: &str, subject: Subject, role: Role) {
        let access = self.namespaces.entry(namespace.to_string()).or_default();
        match &subject {
            Subject::Group(group) => {
                access.groups.insert(group.clone(), role);
            }
            other => {
                let user = other.user_name().unwrap_or_default();
                access.users.insert(user, (subject, role));
            }
        }
    }

    /// Removes the binding of `subject` in `namespace`; whether there was one.
    pub fn unbind(&mut self, namespace: &str, subject: &Subject) -> bool {
        let Some(access) = self.namespaces.get_mut(namespace) else {
            return false;
        };
        match subject {
            Subject::Group(group) => access.groups.remove(group).is_some(),
            other => other.user_name().is_some_and(|u| access.users.remove(&u).is_some()),
        }
    }

    /// The binding of exactly this subject (not via groups), if any.
    pub fn binding(&self, namespace: &str, subject: &Subject) -> Option<Role> {
        let access = self.namespaces.get(namespace)?;
        match subject {
            Subject::Group(group) => access.groups.get(group).copied(),
            other => access.users.get(&other.user_name()?).map(|(_, role)| *role),
        }
    }

    /// Whether `identity` is a configured cluster admin (as a user or via a group).
    pub fn is_cluster_admin(&self, identity: &Identity) -> bool {
        self.is_cluster_admin_principal(identity)
    }

    pub(crate) fn is_cluster_admin_principal(&self, who: &impl Principal) -> bool {
        // Most policies name no admin groups: then the caller's are not read.
        self.admin_users.contains(who.user())
            || (!self.admin_groups.is_empty() && who.groups().any(|g| self.admin_groups.contains(g)))
    }

    /// The strongest standing `identity` has in `namespace`, if any.
    /// O(number of the identity's groups).
    pub fn standing(&self, identity: &Identity, namespace: &str) -> Option<Standing> {
        if self.is_cluster_admin(identity) {
            return Some(Standing::ClusterAdmin);
        }
        let access = self.namespaces.get(namespace)?;
        if access.owner.as_ref().is_some_and(|owner| owner.matches(identity)) {
            return Some(Standing::Owner);
        }
        let direct = access.users.get(&identity.user).map(|(subject, role)| (*role, subject.clone()));
        let via_groups =
            identity.groups.iter().filter_map(|g| access.groups.get(g).map(|role| (*role, Subject::Group(g.clone()))));
        direct
            .into_iter()
            .chain(via_groups)
            .max_by_key(|(role, _)| *role)
            .map(|(role, via)| Standing::Contributor { role, via })
    }

    /// Decides one request. Deny by default.
    ///
    /// ```
    /// use kf_tenancy::{Identity, Policy, Request, Role, RoleTable, Subject, Verb};
    ///
    /// let mut policy = Policy::new(RoleTable::default());
    /// policy.set_owner("team-a", Subject::User("alice".into()));
    /// policy.bind("team-a", Subject::User("bob".into()), Role::View);
    ///
    /// let bob = Identity::user("bob");
    /// let read = Request { identity: &bob, namespace: "team-a", verb: Verb::List, resource: "runs" };
    /// assert!(policy.decide(&read).allowed);
    /// let write = Request { verb: Verb::Create, ..read };
    /// assert!(!policy.decide(&write).allowed);
    /// ```
    pub fn decide(&self, request: &Request<'_>) -> Decision {
        let Some(standing) = self.standing(request.identity, request.namespace) else {
            return Decision { allowed: false, reason: Reason::NoRole };
        };
        let role = standing.role();
        if !self.roles.allows(role, request.verb, request.resource) && !matches!(standing, Standing::ClusterAdmin) {
            return Decision { allowed: false, reason: Reason::RoleForbids { role } };
        }
        let reason = match standing {
            Standing::ClusterAdmin => Reason::ClusterAdmin,
            Standing::Owner => Reason::Owner,
            Standing::Contributor { role, via } => Reason::Granted { role, via },
        };
        Decision { allowed: true, reason }
    }

    /// Whether [`Policy::decide`] would allow `request`, without building the
    /// reason: no subject is cloned, so the per-request layer and handler
    /// checks allocate nothing. O(number of the identity's groups).
    pub fn allows(&self, request: &Request<'_>) -> bool {
        self.allows_principal(request.identity, request.namespace, request.verb, request.resource)
    }

    /// [`Policy::allows`] for any [`Principal`]: the layer decides on names
    /// borrowed from the request.
    pub(crate) fn allows_principal(&self, who: &impl Principal, namespace: &str, verb: Verb, resource: &str) -> bool {
        if self.is_cluster_admin_principal(who) {
            return true;
        }
        let Some(access) = self.namespaces.get(namespace) else {
            return false;
        };
        let role = if access.owner.as_ref().is_some_and(|owner| owner.matches_principal(who)) {
            Role::Admin
        } else {
            let direct = access.users.get(who.user()).map(|(_, role)| *role);
            let via_groups = who.groups().filter_map(|g| access.groups.get(g).copied());
            match direct.into_iter().chain(via_groups).max() {
                Some(role) => role,
                None => return false,
            }
        };
        self.roles.allows(role, verb, resource)
    }

    /// May `actor` bind `grantee` to `role` in `namespace`? Only those whose role
    /// manages bindings may, never above their own role, and never for the owner.
    pub fn decide_grant(&self, actor: &Identity, namespace: &str, grantee: &Subject, role: Role) -> Decision {
        self.decide_binding_change(actor, namespace, grantee, Verb::Create, Some(role))
    }

    /// May `actor` remove the binding of `grantee` in `namespace`? Only those
    /// whose role manages bindings may, only for subjects not above themselves,
    /// and never for the owner.
    pub fn decide_revoke(&self, actor: &Identity, namespace: &str, grantee: &Subject) -> Decision {
        self.decide_binding_change(actor, namespace, grantee, Verb::Delete, None)
    }

    fn decide_binding_change(
        &self,
        actor: &Identity,
        namespace: &str,
        grantee: &Subject,
        verb: Verb,
        new_role: Option<Role>,
    ) -> Decision {
        let deny = |reason| Decision { allowed: false, reason };
        let request = Request { identity: actor, namespace, verb, resource: BINDINGS };
        let allowed = self.decide(&request);
        if !allowed.allowed {
            return allowed;
        }
        let owner = self.namespaces.get(namespace).and_then(|a| a.owner.as_ref());
        if owner == Some(grantee) {
            return deny(Reason::OwnerIsFixed);
        }
        if allowed.reason == Reason::ClusterAdmin {
            return allowed;
        }
        let own = self.standing(actor, namespace).map_or(Role::View, |s| s.role());
        // A change may neither create nor touch a binding above the actor's role.
        let current = self.binding(namespace, grantee);
        for requested in [new_role, current].into_iter().flatten() {
            if requested > own {
                return deny(Reason::AboveOwnRole { requested, own });
            }
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn user(name: &str) -> Subject {
        Subject::User(name.into())
    }

    fn team() -> Policy {
        let mut p = Policy::new(RoleTable::default());
        p.add_cluster_admin(&Subject::Group("platform".into()));
        p.set_owner("team-a", user("alice"));
        p.bind("team-a", user("adam"), Role::Admin);
        p.bind("team-a", user("eve"), Role::Edit);
        p.bind("team-a", user("vic"), Role::View);
        p.bind("team-a", Subject::Group("ml".into()), Role::Edit);
        p.set_owner("team-b", user("bob"));
        p
    }

    fn decide(p: &Policy, who: &Identity, ns: &str, verb: Verb, resource: &str) -> Decision {
        p.decide(&Request { identity: who, namespace: ns, verb, resource })
    }

    #[test]
    fn roles_allow_what_they_should() {
        let p = team();
        let vic = Identity::user("vic");
        assert!(decide(&p, &vic, "team-a", Verb::Get, "runs").allowed);
        assert_eq!(decide(&p, &vic, "team-a", Verb::Create, "runs").reason, Reason::RoleForbids { role: Role::View });
        assert!(decide(&p, &Identity::user("eve"), "team-a", Verb::Delete, "models").allowed);
        assert_eq!(decide(&p, &Identity::user("alice"), "team-a", Verb::Delete, BINDINGS).reason, Reason::Owner);
    }

    #[test]
    fn groups_grant_and_the_strongest_role_wins() {
        let p = team();
        let member = Identity::user("newcomer").with_group("ml");
        let d = decide(&p, &member, "team-a", Verb::Create, "runs");
        assert_eq!(d.reason, Reason::Granted { role: Role::Edit, via: Subject::Group("ml".into()) });
        let vic_in_ml = Identity::user("vic").with_group("ml");
        assert!(decide(&p, &vic_in_ml, "team-a", Verb::Create, "runs").allowed);
    }

    #[test]
    fn other_namespaces_and_unknown_ones_look_the_same() {
        let p = team();
        let alice = Identity::user("alice");
        assert_eq!(decide(&p, &alice, "team-b", Verb::Get, "runs").reason, Reason::NoRole);
        assert_eq!(decide(&p, &alice, "no-such-ns", Verb::Get, "runs").reason, Reason::NoRole);
    }

    #[test]
    fn cluster_admins_come_from_config() {
        let p = team();
        let ops = Identity::user("ops").with_group("platform");
        assert_eq!(decide(&p, &ops, "team-b", Verb::Delete, BINDINGS).reason, Reason::ClusterAdmin);
        assert!(decide(&p, &ops, "nonexistent", Verb::Get, "runs").allowed);
    }

    #[test]
    fn contributors_cannot_raise_themselves_or_others() {
        let p = team();
        let eve = Identity::user("eve");
        // an editor may not touch bindings at all, not even their own
        assert!(!p.decide_grant(&eve, "team-a", &user("eve"), Role::Admin).allowed);
        assert!(!p.decide_grant(&eve, "team-a", &user("mallory"), Role::View).allowed);
        let vic = Identity::user("vic");
        assert!(!p.decide_grant(&vic, "team-a", &user("vic"), Role::Edit).allowed);
        // an admin contributor may grant up to admin, but not change the owner
        let adam = Identity::user("adam");
        assert!(p.decide_grant(&adam, "team-a", &user("zoe"), Role::Admin).allowed);
        assert_eq!(p.decide_grant(&adam, "team-a", &user("alice"), Role::View).reason, Reason::OwnerIsFixed);
        assert_eq!(p.decide_revoke(&adam, "team-a", &user("alice")).reason, Reason::OwnerIsFixed);
        // and nobody from another namespace may
        assert_eq!(p.decide_grant(&Identity::user("bob"), "team-a", &user("bob"), Role::View).reason, Reason::NoRole);
    }

    #[test]
    fn a_custom_table_where_editors_manage_bindings_still_caps_at_own_role() {
        use crate::role::{Resources, Rule};
        let all = || Rule { verbs: Verb::ALL.to_vec(), resources: Resources::All };
        let mut p = Policy::new(RoleTable::new(vec![], vec![all()], vec![all()]));
        p.set_owner("ns", user("o"));
        p.bind("ns", user("ed"), Role::Edit);
        p.bind("ns", user("ad"), Role::Admin);
        let ed = Identity::user("ed");
        assert!(p.decide_grant(&ed, "ns", &user("x"), Role::Edit).allowed);
        assert_eq!(
            p.decide_grant(&ed, "ns", &user("ed"), Role::Admin).reason,
            Reason::AboveOwnRole { requested: Role::Admin, own: Role::Edit }
        );
        assert_eq!(
            p.decide_revoke(&ed, "ns", &user("ad")).reason,
            Reason::AboveOwnRole { requested: Role::Admin, own: Role::Edit }
        );
    }

    #[test]
    fn service_accounts_match_their_kubernetes_user_name() {
        let mut p = team();
        let sa = Subject::ServiceAccount { namespace: "team-a".into(), name: "default-editor".into() };
        p.bind("team-a", sa.clone(), Role::Edit);
        let who = Identity::user("system:serviceaccount:team-a:default-editor");
        assert_eq!(
            decide(&p, &who, "team-a", Verb::Create, "runs").reason,
            Reason::Granted { role: Role::Edit, via: sa }
        );
    }

    fn role() -> impl Strategy<Value = Role> {
        prop::sample::select(Role::ALL.to_vec())
    }

    proptest! {
        /// The allocation-free check the layer uses agrees with the full
        /// decision for every caller, namespace, verb and resource.
        #[test]
        fn allows_agrees_with_decide(
            users in prop::collection::vec((0usize..2, 0usize..5, role()), 0..10),
            groups in prop::collection::vec((0usize..2, 0usize..3, role()), 0..6),
            owner in 0usize..6, admin_group in 0usize..4, caller in 0usize..6,
            caller_groups in prop::collection::vec(0usize..4, 0..3),
            ns in 0usize..3, verb in prop::sample::select(Verb::ALL.to_vec()),
            resource in prop::sample::select(vec!["runs", "secrets", BINDINGS]),
        ) {
            let mut p = Policy::new(RoleTable::default());
            p.add_cluster_admin(&Subject::Group(format!("g{admin_group}")));
            p.set_owner("ns0", user(&format!("u{owner}")));
            for (n, who, r) in &users {
                p.bind(&format!("ns{n}"), user(&format!("u{who}")), *r);
            }
            for (n, g, r) in &groups {
                p.bind(&format!("ns{n}"), Subject::Group(format!("g{g}")), *r);
            }
            let mut identity = Identity::user(format!("u{caller}"));
            for g in &caller_groups {
                identity = identity.with_group(format!("g{g}"));
            }
            let namespace = format!("ns{ns}");
            let ask = Request { identity: &identity, namespace: &namespace, verb, resource };
            prop_assert_eq!(p.allows(&ask), p.decide(&ask).allowed);
        }

        /// Whatever bindings exist, a grant decision never lets a non-admin
        /// create a binding above their own role, and a contributor never
        /// gains access to a namespace they hold no binding in.
        #[test]
        fn grants_never_exceed_the_actors_role(
            bindings in prop::collection::vec((0usize..5, role()), 0..8),
            actor in 0usize..5, grantee in 0usize..6, requested in role(), other_ns in any::<bool>(),
        ) {
            let mut p = Policy::new(RoleTable::default());
            p.set_owner("ns", user("owner"));
            for (who, r) in &bindings {
                p.bind("ns", user(&format!("u{who}")), *r);
            }
            let actor_id = Identity::user(format!("u{actor}"));
            let ns = if other_ns { "elsewhere" } else { "ns" };
            let d = p.decide_grant(&actor_id, ns, &user(&format!("u{grantee}")), requested);
            if d.allowed {
                let own = p.standing(&actor_id, ns).map(|s| s.role());
                prop_assert!(own.is_some_and(|own| own >= requested && p.roles().manages_bindings(own)));
                prop_assert!(!other_ns);
            }
        }
    }
}
