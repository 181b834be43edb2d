//! Who is asking ([`Identity`]) and who a role is granted to ([`Subject`]).

use std::fmt;

/// An authenticated caller: a user name and the groups the identity provider
/// vouched for. Anonymous callers have no `Identity` at all.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// User name, usually an email (`alice@example.com`) or a service account
    /// in Kubernetes form (`system:serviceaccount:<namespace>:<name>`).
    pub user: String,
    /// Group names.
    pub groups: Vec<String>,
}

impl Identity {
    /// A user without groups.
    pub fn user(name: impl Into<String>) -> Self {
        Identity { user: name.into(), groups: Vec::new() }
    }

    /// Adds a group.
    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.groups.push(group.into());
        self
    }
}

/// Who asks, as the policy reads it: a user name and group names. An
/// [`Identity`] is one; the layer also decides on names still borrowed from
/// the request headers, so a request whose handler never asks for the
/// `Identity` costs no allocation.
pub(crate) trait Principal {
    /// The user name.
    fn user(&self) -> &str;
    /// The group names.
    fn groups(&self) -> impl Iterator<Item = &str>;
}

impl Principal for Identity {
    fn user(&self) -> &str {
        &self.user
    }

    fn groups(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(String::as_str)
    }
}

/// The receiver of a role binding, as an RBAC subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// One user.
    User(String),
    /// Every member of a group.
    Group(String),
    /// A Kubernetes service account.
    ServiceAccount {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

impl Subject {
    /// The user name an identity carries when it is this subject; `None` for
    /// groups. Service accounts authenticate as `system:serviceaccount:ns:name`.
    pub fn user_name(&self) -> Option<String> {
        match self {
            Subject::User(name) => Some(name.clone()),
            Subject::Group(_) => None,
            Subject::ServiceAccount { namespace, name } => Some(format!("system:serviceaccount:{namespace}:{name}")),
        }
    }

    /// The RBAC kind: `User`, `Group` or `ServiceAccount`.
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::User(_) => "User",
            Subject::Group(_) => "Group",
            Subject::ServiceAccount { .. } => "ServiceAccount",
        }
    }

    /// Whether `identity` is this subject or a member of it. Runs on every
    /// owner check the layer makes, so it compares in place instead of
    /// building [`Subject::user_name`].
    pub fn matches(&self, identity: &Identity) -> bool {
        self.matches_principal(identity)
    }

    pub(crate) fn matches_principal(&self, who: &impl Principal) -> bool {
        match self {
            Subject::User(name) => name == who.user(),
            Subject::Group(group) => who.groups().any(|g| g == group),
            Subject::ServiceAccount { namespace, name } => who
                .user()
                .strip_prefix("system:serviceaccount:")
                .and_then(|rest| rest.strip_prefix(namespace.as_str()))
                .and_then(|rest| rest.strip_prefix(':'))
                .is_some_and(|rest| rest == name),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::User(name) => write!(f, "user {name}"),
            Subject::Group(name) => write!(f, "group {name}"),
            Subject::ServiceAccount { namespace, name } => write!(f, "service account {namespace}/{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn part() -> impl Strategy<Value = String> {
        // colons included: service account parts must not be split ambiguously
        prop::sample::select(vec!["a", "b", "a:b", ":", "", "system", "serviceaccount"]).prop_map(str::to_string)
    }

    fn subject() -> impl Strategy<Value = Subject> {
        prop_oneof![
            part().prop_map(Subject::User),
            part().prop_map(Subject::Group),
            (part(), part()).prop_map(|(namespace, name)| Subject::ServiceAccount { namespace, name }),
        ]
    }

    proptest! {
        /// Matching in place agrees with matching on the built user name.
        #[test]
        fn matches_agrees_with_user_name(subject in subject(), user in part(), sa in (part(), part()), as_sa in any::<bool>(), groups in prop::collection::vec(part(), 0..3)) {
            let user = if as_sa { format!("system:serviceaccount:{}:{}", sa.0, sa.1) } else { user };
            let identity = Identity { user, groups };
            let expected = match &subject {
                Subject::Group(group) => identity.groups.contains(group),
                other => other.user_name().is_some_and(|u| u == identity.user),
            };
            prop_assert_eq!(subject.matches(&identity), expected);
        }
    }
}
