//! `kf tenancy`: profiles, contributors and access checks on the local
//! SQLite policy store. Wiring only: decisions are kf-tenancy's.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kf_tenancy::{Identity, Profile, Request, Role, RoleTable, SqlitePolicyStore, Subject, Tenancy, Verb};
use serde_json::json;

use crate::output::OutputFormat;

/// `kf tenancy …`
#[derive(Debug, Args)]
pub struct TenancyArgs {
    /// The policy database (SQLite). Default: $KF_HOME/tenancy.db, KF_HOME defaulting to ~/.kf.
    #[arg(long, global = true, env = "KF_TENANCY_DB")]
    db: Option<PathBuf>,
    /// Users (or `group:NAME`) that are cluster admins.
    #[arg(long = "cluster-admin", global = true, env = "KF_CLUSTER_ADMINS", value_delimiter = ',')]
    cluster_admins: Vec<String>,
    #[command(subcommand)]
    command: TenancyCommand,
}

#[derive(Debug, Subcommand)]
enum TenancyCommand {
    /// Print the Kubernetes objects a profile reconciles into (with its
    /// contributors from the store), as multi-document YAML.
    Render {
        /// A Profile manifest (kubeflow.org/v1).
        file: PathBuf,
    },
    /// Manage profiles (a profile owns the namespace of the same name).
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Explain whether a user may do something in a namespace (exit 0 allowed, 1 denied).
    Check {
        /// The user asking.
        #[arg(long)]
        user: String,
        /// Groups of that user.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// The namespace.
        #[arg(long)]
        namespace: String,
        /// get, list, watch, create, update, patch or delete.
        #[arg(long)]
        verb: Verb,
        /// The resource kind, e.g. runs, models, bindings.
        #[arg(long)]
        resource: String,
    },
}

#[derive(Debug, Subcommand)]
enum ProfileCommand {
    /// Create a profile from a manifest or from flags.
    Create {
        /// The profile (namespace) name.
        #[arg(required_unless_present = "file")]
        name: Option<String>,
        /// The owner's user name.
        #[arg(long, required_unless_present = "file")]
        owner: Option<String>,
        /// A Profile manifest (kubeflow.org/v1) instead of flags.
        #[arg(long, conflicts_with_all = ["name", "owner"])]
        file: Option<PathBuf>,
    },
    /// List profiles with their owners and contributors.
    List,
    /// Give a user or group a role in a namespace.
    AddContributor {
        /// The namespace.
        namespace: String,
        #[command(flatten)]
        who: Grantee,
        /// view, edit or admin.
        #[arg(long)]
        role: Role,
        #[command(flatten)]
        actor: Actor,
    },
    /// Take a user's or group's role away.
    RemoveContributor {
        /// The namespace.
        namespace: String,
        #[command(flatten)]
        who: Grantee,
        #[command(flatten)]
        actor: Actor,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct Grantee {
    /// The user to grant to.
    #[arg(long)]
    user: Option<String>,
    /// The group to grant to.
    #[arg(long)]
    group: Option<String>,
}

impl Grantee {
    fn subject(&self) -> Subject {
        match (&self.user, &self.group) {
            (Some(user), _) => Subject::User(user.clone()),
            (None, Some(group)) => Subject::Group(group.clone()),
            // clap's group makes exactly one of them present
            (None, None) => Subject::User(String::new()),
        }
    }
}

/// Who is making the change: checked like any other caller.
#[derive(Debug, Args)]
struct Actor {
    /// The user making the change.
    #[arg(long = "as", value_name = "USER")]
    as_user: String,
    /// That user's groups.
    #[arg(long = "as-group", value_name = "GROUP")]
    as_groups: Vec<String>,
}

fn default_db() -> PathBuf {
    let home = std::env::var_os("KF_HOME").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".kf")
    });
    home.join("tenancy.db")
}

fn admin_subject(name: &str) -> Subject {
    match name.strip_prefix("group:") {
        Some(group) => Subject::Group(group.to_string()),
        None => Subject::User(name.to_string()),
    }
}

pub fn run(args: TenancyArgs, output: OutputFormat) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("kf tenancy: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(args, output)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kf tenancy: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(args: TenancyArgs, output: OutputFormat) -> anyhow::Result<ExitCode> {
    let db = args.db.unwrap_or_else(default_db);
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let path = db.to_str().ok_or_else(|| anyhow::anyhow!("--db {} is not UTF-8", db.display()))?;
    let admins: Vec<Subject> = args.cluster_admins.iter().map(|a| admin_subject(a)).collect();
    let tenancy = Tenancy::load(SqlitePolicyStore::open(path).await?, RoleTable::default(), &admins).await?;
    let print = |text: String, value: serde_json::Value| match output {
        OutputFormat::Text => outln!("{text}"),
        OutputFormat::Json => outln!("{value}"),
    };
    match args.command {
        TenancyCommand::Profile(ProfileCommand::Create { name, owner, file }) => {
            let profile = match file {
                Some(file) => Profile::from_value(serde_saphyr::from_str(&std::fs::read_to_string(&file)?)?)?,
                None => Profile::from_value(json!({
                    "apiVersion": "kubeflow.org/v1", "kind": "Profile",
                    "metadata": {"name": name},
                    "spec": {"owner": {"kind": "User", "name": owner}},
                }))?,
            };
            tenancy.create_profile(&profile).await?;
            let ns = profile.namespace().unwrap_or_default();
            print(format!("profile {ns} created"), json!({"profile": ns, "created": true}));
        }
        TenancyCommand::Render { file } => {
            let profile = Profile::from_value(serde_saphyr::from_str(&std::fs::read_to_string(&file)?)?)?;
            let namespace = profile.namespace().unwrap_or_default();
            let contributors = tenancy
                .profiles()
                .await?
                .into_iter()
                .find(|r| r.namespace == namespace)
                .map(|r| r.bindings)
                .unwrap_or_default();
            let objects = kf_tenancy::render::render(&profile, &contributors, &Default::default())?;
            match output {
                OutputFormat::Json => outln!("{}", json!(objects)),
                OutputFormat::Text => out!("{}", serde_saphyr::to_string_multiple(&objects)?),
            }
        }
        TenancyCommand::Profile(ProfileCommand::List) => {
            let records = tenancy.profiles().await?;
            let rows: Vec<serde_json::Value> = records
                .iter()
                .map(|r| {
                    let contributors: Vec<_> = r
                        .bindings
                        .iter()
                        .map(|(s, role)| json!({"subject": s.to_string(), "role": role.as_str()}))
                        .collect();
                    json!({"profile": r.namespace, "owner": r.owner.to_string(), "contributors": contributors})
                })
                .collect();
            match output {
                OutputFormat::Json => outln!("{}", json!(rows)),
                OutputFormat::Text => {
                    outln!("{:<24} {:<32} CONTRIBUTORS", "PROFILE", "OWNER");
                    for r in &records {
                        let contributors: Vec<String> =
                            r.bindings.iter().map(|(s, role)| format!("{s} ({role})")).collect();
                        outln!("{:<24} {:<32} {}", r.namespace, r.owner.to_string(), contributors.join(", "));
                    }
                }
            }
        }
        TenancyCommand::Profile(ProfileCommand::AddContributor { namespace, who, role, actor }) => {
            let actor = Identity { user: actor.as_user, groups: actor.as_groups };
            let grantee = who.subject();
            let decision = tenancy.grant(&actor, &namespace, &grantee, role).await?;
            print(
                format!("{grantee} is now {role} in {namespace} ({})", decision.reason),
                json!({"namespace": namespace, "subject": grantee.to_string(), "role": role.as_str()}),
            );
        }
        TenancyCommand::Profile(ProfileCommand::RemoveContributor { namespace, who, actor }) => {
            let actor = Identity { user: actor.as_user, groups: actor.as_groups };
            let grantee = who.subject();
            let removed = tenancy.revoke(&actor, &namespace, &grantee).await?;
            let text = if removed {
                format!("{grantee} removed from {namespace}")
            } else {
                format!("{grantee} had no role in {namespace}")
            };
            print(text, json!({"namespace": namespace, "subject": grantee.to_string(), "removed": removed}));
        }
        TenancyCommand::Check { user, groups, namespace, verb, resource } => {
            let identity = Identity { user, groups };
            let decision =
                tenancy.check(&Request { identity: &identity, namespace: &namespace, verb, resource: &resource });
            let verdict = if decision.allowed { "allowed" } else { "denied" };
            print(
                format!(
                    "{verdict}: {} may{} {verb} {resource} in {namespace}: {}",
                    identity.user,
                    if decision.allowed { "" } else { " not" },
                    decision.reason
                ),
                json!({"allowed": decision.allowed, "reason": decision.reason.to_string()}),
            );
            if !decision.allowed {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
