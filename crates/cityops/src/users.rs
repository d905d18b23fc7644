//! Users around the platform: the token signing key in the data directory, the demo accounts, and the
//! `cityops user add|passwd|list|disable|enable` commands.

use std::io::{BufRead, Write as _};
use std::path::Path;

use anyhow::Context as _;
use chrono::Utc;
use cityops_auth::{NewUser, Password, PasswordPolicy, Role, SigningKey};
use cityops_store::Store;
use cityops_store::users::UserInsert;

/// The token signing key: read from `<data_dir>/auth.key`, or made and written there (mode 0600) on
/// first start, so tokens stay valid across restarts.
pub fn signing_key(data_dir: &Path) -> anyhow::Result<SigningKey> {
    let path = data_dir.join("auth.key");
    if path.exists() {
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        return SigningKey::from_bytes(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    let key = SigningKey::generate();
    std::fs::create_dir_all(data_dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(&key.to_bytes())?;
    Ok(key)
}

/// The demo's accounts: (username, display name, role, department).
pub const DEMO_USERS: &[(&str, &str, Role, Option<&str>)] = &[
    ("admin", "系统管理员", Role::Admin, None),
    ("operator", "受理员 王芳", Role::Operator, None),
    ("shiftlead", "值班长 李强", Role::ShiftLead, None),
    ("dispatcher", "派遣员 张伟", Role::Dispatcher, None),
    ("supervisor", "督查 赵敏", Role::Supervisor, None),
    ("inspector1", "监督员 刘洋", Role::Inspector, None),
    ("inspector2", "监督员 陈静", Role::Inspector, None),
    ("inspector3", "监督员 杨磊", Role::Inspector, None),
    (
        "handler.municipal",
        "市政管理处置员",
        Role::DepartmentHandler,
        Some("municipal"),
    ),
    (
        "handler.sanitation",
        "环卫处置员",
        Role::DepartmentHandler,
        Some("sanitation"),
    ),
    (
        "handler.water",
        "水务处置员",
        Role::DepartmentHandler,
        Some("water"),
    ),
    (
        "handler.lighting",
        "路灯管理处置员",
        Role::DepartmentHandler,
        Some("lighting"),
    ),
    (
        "handler.landscaping",
        "园林绿化处置员",
        Role::DepartmentHandler,
        Some("landscaping"),
    ),
    (
        "handler.enforcement",
        "城管执法处置员",
        Role::DepartmentHandler,
        Some("enforcement"),
    ),
];

/// What happened to the demo accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemoUsers {
    /// Created now with this password (generated when none was given: printed once).
    Created { password: String, generated: bool },
    /// They existed; the given password was set on all of them.
    PasswordReset,
    /// They existed and no password was given: nothing changed.
    Existing,
}

/// Creates the demo accounts that are missing; with `password`, sets it on every demo account.
pub async fn ensure_demo_users(store: &Store, password: Option<&str>) -> anyhow::Result<DemoUsers> {
    let existing = store.users().await?;
    let missing: Vec<_> = DEMO_USERS
        .iter()
        .filter(|(name, ..)| !existing.iter().any(|u| u.username == *name))
        .collect();
    let (password, generated) = match password {
        Some(p) => (p.to_string(), false),
        None if missing.is_empty() => return Ok(DemoUsers::Existing),
        None => (generate_password(), true),
    };
    PasswordPolicy::default()
        .check("demo", &password)
        .map_err(|e| anyhow::anyhow!("demo password: {e}"))?;
    let hash = tokio::task::spawn_blocking({
        let password = password.clone();
        move || cityops_auth::hash_password(&password)
    })
    .await?
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = Utc::now();
    for (username, display_name, role, department) in DEMO_USERS {
        if missing.iter().any(|(name, ..)| name == username) {
            let insert = UserInsert {
                username,
                display_name,
                role: *role,
                department: *department,
                password_hash: &hash,
            };
            store.create_user(&insert, now).await?;
        } else {
            store.set_password_hash(username, &hash, now).await?;
        }
    }
    Ok(if missing.len() == DEMO_USERS.len() {
        DemoUsers::Created {
            password,
            generated,
        }
    } else {
        DemoUsers::PasswordReset
    })
}

fn generate_password() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..14)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Reads a password: the first line of standard input (so scripts can pipe it; nothing is echoed
/// from a terminal either, since we print no prompt that invites typing it into a log).
pub fn read_password_line(input: &mut impl BufRead) -> anyhow::Result<Password> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(Password::new(password))
}

/// `cityops user add`.
pub async fn add(
    store: &Store,
    username: &str,
    display_name: &str,
    role: &str,
    department: Option<&str>,
    password: Password,
) -> anyhow::Result<()> {
    let role = Role::parse(role).with_context(|| {
        let roles: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
        format!("role {role:?}: expected one of {}", roles.join(", "))
    })?;
    let new_user = NewUser {
        username: username.to_string(),
        display_name: display_name.to_string(),
        role,
        department: department.map(str::to_string),
        password,
    };
    let hash = tokio::task::spawn_blocking(move || {
        new_user
            .prepare(&PasswordPolicy::default())
            .map(|h| (new_user, h))
    })
    .await?
    .map_err(|e| anyhow::anyhow!("{}: {e}", e.field()))?;
    let (new_user, hash) = hash;
    let user = store
        .create_user(
            &UserInsert {
                username: &new_user.username,
                display_name: &new_user.display_name,
                role: new_user.role,
                department: new_user.department.as_deref(),
                password_hash: &hash,
            },
            Utc::now(),
        )
        .await?;
    println!(
        "created user {} ({}, {})",
        user.username,
        user.display_name,
        user.role.as_str()
    );
    Ok(())
}

/// `cityops user passwd`.
pub async fn passwd(store: &Store, username: &str, password: Password) -> anyhow::Result<()> {
    PasswordPolicy::default()
        .check(username, password.expose())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let hash = tokio::task::spawn_blocking(move || cityops_auth::hash_password(password.expose()))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(
        store.set_password_hash(username, &hash, Utc::now()).await?,
        "no user {username:?}"
    );
    println!("password of {username} changed");
    Ok(())
}

/// `cityops user list`.
pub async fn list(store: &Store) -> anyhow::Result<()> {
    println!(
        "{:<22} {:<18} {:<14} {:<9} display name",
        "username", "role", "department", "status"
    );
    for user in store.users().await? {
        println!(
            "{:<22} {:<18} {:<14} {:<9} {}",
            user.username,
            user.role.as_str(),
            user.department.as_deref().unwrap_or("-"),
            if user.disabled { "disabled" } else { "active" },
            user.display_name
        );
    }
    Ok(())
}

/// `cityops user disable|enable`.
pub async fn set_disabled(store: &Store, username: &str, disabled: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        store
            .set_user_disabled(username, disabled, Utc::now())
            .await?,
        "no user {username:?}"
    );
    println!(
        "{username} {}",
        if disabled { "disabled" } else { "enabled" }
    );
    Ok(())
}
