-- Namespace owners and role bindings. Subjects are (kind, namespace, name);
-- namespace is '' for users and groups so the primary key stays simple.
CREATE TABLE namespaces (
    name            TEXT PRIMARY KEY NOT NULL,
    owner_kind      TEXT NOT NULL CHECK (owner_kind IN ('User', 'Group', 'ServiceAccount')),
    owner_namespace TEXT NOT NULL DEFAULT '',
    owner_name      TEXT NOT NULL
);

CREATE TABLE bindings (
    namespace         TEXT NOT NULL REFERENCES namespaces (name) ON DELETE CASCADE,
    subject_kind      TEXT NOT NULL CHECK (subject_kind IN ('User', 'Group', 'ServiceAccount')),
    subject_namespace TEXT NOT NULL DEFAULT '',
    subject_name      TEXT NOT NULL,
    role              TEXT NOT NULL CHECK (role IN ('view', 'edit', 'admin')),
    PRIMARY KEY (namespace, subject_kind, subject_namespace, subject_name)
);
