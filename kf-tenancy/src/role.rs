//! Roles, verbs and the rules that connect them, as data.
//!
//! Kubeflow grants three namespace roles through the ClusterRoles
//! `kubeflow-admin`, `kubeflow-edit` and `kubeflow-view`. Here a role is a value
//! and what it allows is a [`RoleTable`] the platform team can replace; the
//! default table follows upstream: view reads, edit also writes workloads and
//! artifacts, admin also manages who has access.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A namespace role, ordered by power: `View < Edit < Admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read-only access.
    View,
    /// Read and write workloads and artifacts.
    Edit,
    /// Everything in the namespace, including managing contributors.
    Admin,
}

impl Role {
    /// All roles, weakest first.
    pub const ALL: [Role; 3] = [Role::View, Role::Edit, Role::Admin];

    /// The lower-case name used in APIs and annotations (`view`, `edit`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::View => "view",
            Role::Edit => "edit",
            Role::Admin => "admin",
        }
    }

    /// The ClusterRole Kubeflow binds for this role (`kubeflow-view`, …).
    pub fn cluster_role(self) -> &'static str {
        match self {
            Role::View => "kubeflow-view",
            Role::Edit => "kubeflow-edit",
            Role::Admin => "kubeflow-admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    /// Accepts `view`/`edit`/`admin` and the ClusterRole names `kubeflow-view`/….
    fn from_str(s: &str) -> Result<Self, Error> {
        let name = s.strip_prefix("kubeflow-").unwrap_or(s);
        Role::ALL.into_iter().find(|r| r.as_str() == name).ok_or_else(|| Error::Invalid {
            path: "role".into(),
            message: format!("expected view, edit or admin, found {s:?}"),
        })
    }
}

/// What a request does to a resource, as Kubernetes names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// Read one object.
    Get,
    /// Read a collection.
    List,
    /// Stream changes.
    Watch,
    /// Create an object.
    Create,
    /// Replace an object.
    Update,
    /// Partially change an object.
    Patch,
    /// Delete an object.
    Delete,
}

impl Verb {
    /// All verbs.
    pub const ALL: [Verb; 7] =
        [Verb::Get, Verb::List, Verb::Watch, Verb::Create, Verb::Update, Verb::Patch, Verb::Delete];

    /// The lower-case Kubernetes name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }

    /// Whether the verb only reads.
    pub fn is_read(self) -> bool {
        matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }

    /// The verb an HTTP method usually means (`GET` → get, `POST` → create, …).
    /// `HEAD` and `OPTIONS` read; unknown methods have no verb.
    pub fn from_http_method(method: &str) -> Option<Verb> {
        const TABLE: [(&str, Verb); 7] = [
            ("GET", Verb::Get),
            ("HEAD", Verb::Get),
            ("OPTIONS", Verb::Get),
            ("POST", Verb::Create),
            ("PUT", Verb::Update),
            ("PATCH", Verb::Patch),
            ("DELETE", Verb::Delete),
        ];
        // No allocation: this runs on every request the layer sees.
        TABLE.iter().find(|(name, _)| name.eq_ignore_ascii_case(method)).map(|(_, verb)| *verb)
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verb {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let lower = s.to_ascii_lowercase();
        Verb::ALL.into_iter().find(|v| v.as_str() == lower).ok_or_else(|| Error::Invalid {
            path: "verb".into(),
            message: format!("expected one of get, list, watch, create, update, patch, delete; found {s:?}"),
        })
    }
}

/// The resource kind through which contributors are managed. Only roles whose
/// rules allow writing it may change who has access to a namespace.
pub const BINDINGS: &str = "bindings";

/// Which resources a rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resources {
    /// Every resource kind.
    All,
    /// Every resource kind except these.
    AllExcept(Vec<String>),
    /// Exactly these resource kinds.
    Only(Vec<String>),
}

impl Resources {
    fn covers(&self, resource: &str) -> bool {
        match self {
            Resources::All => true,
            Resources::AllExcept(excluded) => !excluded.iter().any(|r| r == resource),
            Resources::Only(included) => included.iter().any(|r| r == resource),
        }
    }
}

/// One grant: these verbs on these resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The verbs granted.
    pub verbs: Vec<Verb>,
    /// The resources they apply to.
    pub resources: Resources,
}

/// What each role may do inside a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleTable {
    view: Vec<Rule>,
    edit: Vec<Rule>,
    admin: Vec<Rule>,
}

impl Default for RoleTable {
    /// Upstream semantics: view reads everything except secrets; edit also
    /// writes everything except bindings; admin may do everything.
    fn default() -> Self {
        let reads = vec![Verb::Get, Verb::List, Verb::Watch];
        RoleTable {
            view: vec![Rule { verbs: reads, resources: Resources::AllExcept(vec!["secrets".into()]) }],
            edit: vec![Rule { verbs: Verb::ALL.to_vec(), resources: Resources::AllExcept(vec![BINDINGS.into()]) }],
            admin: vec![Rule { verbs: Verb::ALL.to_vec(), resources: Resources::All }],
        }
    }
}

impl RoleTable {
    /// A table with the given rules per role. Rules are not inherited: list
    /// everything each role may do.
    pub fn new(view: Vec<Rule>, edit: Vec<Rule>, admin: Vec<Rule>) -> Self {
        RoleTable { view, edit, admin }
    }

    /// The rules of one role.
    pub fn rules(&self, role: Role) -> &[Rule] {
        match role {
            Role::View => &self.view,
            Role::Edit => &self.edit,
            Role::Admin => &self.admin,
        }
    }

    /// Whether `role` may apply `verb` to `resource`. O(rules × listed resources).
    pub fn allows(&self, role: Role, verb: Verb, resource: &str) -> bool {
        self.rules(role).iter().any(|rule| rule.verbs.contains(&verb) && rule.resources.covers(resource))
    }

    /// Whether `role` may change bindings (write the [`BINDINGS`] resource).
    pub fn manages_bindings(&self, role: Role) -> bool {
        self.allows(role, Verb::Create, BINDINGS) && self.allows(role, Verb::Delete, BINDINGS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_from_both_spellings_and_order_by_power() {
        assert_eq!("edit".parse::<Role>().unwrap(), Role::Edit);
        assert_eq!("kubeflow-admin".parse::<Role>().unwrap(), Role::Admin);
        assert!("owner".parse::<Role>().is_err());
        assert!(Role::View < Role::Edit && Role::Edit < Role::Admin);
    }

    #[test]
    fn default_table_follows_upstream() {
        let t = RoleTable::default();
        assert!(t.allows(Role::View, Verb::List, "runs"));
        assert!(!t.allows(Role::View, Verb::Create, "runs"));
        assert!(!t.allows(Role::View, Verb::Get, "secrets"));
        assert!(t.allows(Role::Edit, Verb::Delete, "models"));
        assert!(!t.allows(Role::Edit, Verb::Create, BINDINGS));
        assert!(t.allows(Role::Admin, Verb::Create, BINDINGS));
        assert!(!t.manages_bindings(Role::Edit) && t.manages_bindings(Role::Admin));
    }

    #[test]
    fn every_verb_round_trips_through_its_name() {
        for verb in Verb::ALL {
            assert_eq!(verb.as_str().parse::<Verb>().unwrap(), verb);
        }
        assert_eq!(Verb::from_http_method("post"), Some(Verb::Create));
        assert_eq!(Verb::from_http_method("BREW"), None);
    }
}
