//! The audit trail of each case: who did what, when, from which state to which, hash-chained.
//!
//! Records of one case form a chain: `hash = hex(sha256(prev_hash || canonical))`, where `prev_hash` is
//! the previous record's hash as 64 lower-case hex digits ([`GENESIS_HASH`] for the first record) and
//! `canonical` is the compact JSON array
//! `[case_id, seq, at, actor, role, action, from_state, to_state, note, evidence, payload]`
//! with object keys sorted at every depth (so neither serde_json's `preserve_order` feature nor a
//! database that reformats JSON can change it). `seq` counts 1, 2, 3, … per case, and the case row
//! keeps the head (last seq and hash), written in the same transaction as the record.
//!
//! So [`Store::verify_audit`] notices a changed field (the record's hash no longer matches), a removed
//! record (a gap in `seq`, or a head beyond the end), an inserted or reordered record (a broken link or
//! a changed `seq` under the hash) and a record appended behind the repository's back (beyond the head).
//! The chain is not signed: whoever can rewrite the whole database can rewrite a whole chain; anchoring
//! the heads outside the database (export, signature) is what closes that gap.

use std::collections::BTreeMap;

use anyhow::Context as _;
use cityops_core::UnixMillis;
use cityops_core::case::{CaseState, Role};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{CaseId, CaseStoreError};
use crate::db::SqlBuilder;
use crate::{Dialect, Store};

/// The `prev_hash` of the first record of every case.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The action name of the record that files a case (the workflow's actions use their own names).
pub(super) const REPORT_ACTION: &str = "report";

/// How many cases [`Store::verify_all_audits`] reads at once.
const VERIFY_BATCH: i64 = 500;

/// One record of a case's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub case_id: CaseId,
    /// 1, 2, 3, … within the case.
    pub seq: i64,
    pub at: UnixMillis,
    pub actor: String,
    /// `None` for a report by a citizen, a hotline caller or a device.
    pub role: Option<Role>,
    /// `report`, or the workflow action (`accept`, `dispatch`, …).
    pub action: String,
    pub from_state: Option<CaseState>,
    pub to_state: CaseState,
    pub note: Option<String>,
    /// SHA-256 digests (hex) of the photos or files attached.
    pub evidence: Vec<String>,
    /// The action with its data and the transition recorded (the created case for `report`).
    pub payload: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The result of checking one case's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerdict {
    pub ok: bool,
    /// How many records the case has.
    pub records: u64,
    /// The first record found wrong (by its seq) and what is wrong with it.
    pub first_bad: Option<(i64, AuditFault)>,
}

/// What is wrong with a record of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum AuditFault {
    #[error("the record is missing: the chain goes on with record {next}")]
    Missing { next: i64 },
    #[error(
        "its prev_hash is not the hash of the record before it (a record was removed, inserted or reordered)"
    )]
    BrokenLink,
    #[error("its content does not match its hash (a field was changed)")]
    Altered,
    #[error("it cannot be read: {reason}")]
    Unreadable { reason: String },
    #[error(
        "the case's head names record {head_seq}, but the chain ends before it (records were removed from the end)"
    )]
    Truncated { head_seq: i64 },
    #[error(
        "it comes after the case's head record {head_seq} (appended behind the repository's back)"
    )]
    BeyondHead { head_seq: i64 },
    #[error("its hash is not the head hash kept on the case")]
    HeadMismatch,
    #[error("audit records name a case that does not exist")]
    NoCase,
}

/// A record to append.
pub(super) struct Entry<'a> {
    pub case_id: CaseId,
    pub at: UnixMillis,
    pub actor: &'a str,
    pub role: Option<Role>,
    pub action: &'a str,
    pub from: Option<CaseState>,
    pub to: CaseState,
    pub note: Option<&'a str>,
    pub evidence: &'a [String],
    pub payload: &'a Value,
}

/// The hashed fields of a record, as stored (text, not parsed enums, so a tampered value is still
/// hashed as it is and reported, never a parse error).
struct Fields {
    case_id: i64,
    seq: i64,
    at: i64,
    actor: String,
    role: Option<String>,
    action: String,
    from: Option<String>,
    to: String,
    note: Option<String>,
    evidence: Vec<String>,
    payload: Value,
}

impl Fields {
    fn canonical(&self) -> String {
        canonical_json(&json!([
            self.case_id,
            self.seq,
            self.at,
            self.actor,
            self.role,
            self.action,
            self.from,
            self.to,
            self.note,
            self.evidence,
            self.payload,
        ]))
    }

    fn hash(&self, prev_hash: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(prev_hash.as_bytes());
        hasher.update(self.canonical().as_bytes());
        hex(&hasher.finalize())
    }
}

/// A stored record: its fields (or why they cannot be read) and its links.
struct Stored {
    case_id: i64,
    seq: i64,
    fields: Result<Fields, String>,
    prev_hash: String,
    hash: String,
}

/// The head of a case's chain: the last record's seq and hash (0 and [`GENESIS_HASH`] before the
/// first), kept on the case row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Head {
    pub seq: i64,
    pub hash: String,
}

impl Head {
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS_HASH.to_string(),
        }
    }

    /// The head kept on a case row (`audit_seq`, `audit_hash`).
    pub fn from_case_row(row: &AnyRow) -> anyhow::Result<Self> {
        Ok(Self {
            seq: row.try_get("audit_seq")?,
            hash: row.try_get("audit_hash")?,
        })
    }
}

/// A record chained after a head, ready to be stored.
pub(super) struct Chained {
    fields: Fields,
    prev_hash: String,
    hash: String,
}

impl Chained {
    /// The chain's head once this record is stored.
    pub fn head(&self) -> Head {
        Head {
            seq: self.fields.seq,
            hash: self.hash.clone(),
        }
    }

    /// `INSERT INTO case_audit …` for this record: its values, or once per row of `from` (see
    /// [`SqlBuilder::push_row`]).
    pub fn push_insert(&self, b: &mut SqlBuilder<'_>, from: Option<&str>) -> anyhow::Result<()> {
        let f = &self.fields;
        b.push(
            "INSERT INTO case_audit (case_id, seq, at, actor, role, action, from_state, to_state, note, \
             evidence, payload, prev_hash, hash) ",
        );
        let evidence = serde_json::to_string(&f.evidence).context("evidence")?;
        b.push_row(from, |row| {
            row.push_bind(f.case_id)
                .push_bind(f.seq)
                .push_bind(f.at)
                .push_bind(f.actor.clone())
                .push_bind(f.role.clone())
                .push_bind(f.action.clone())
                .push_bind(f.from.clone())
                .push_bind(f.to.clone())
                .push_bind(f.note.clone())
                .push_bind(evidence.clone())
                .push_bind(canonical_json(&f.payload))
                .push_bind(self.prev_hash.clone())
                .push_bind(self.hash.clone());
        });
        Ok(())
    }
}

impl Chained {
    /// The record's columns as the `a_*` fields of a batched PostgreSQL change (`pg_write`): the
    /// values [`Chained::push_insert`] binds.
    pub fn put_columns(&self, row: &mut serde_json::Map<String, Value>) -> anyhow::Result<()> {
        let f = &self.fields;
        let evidence = serde_json::to_string(&f.evidence).context("evidence")?;
        for (key, value) in [
            ("a_seq", json!(f.seq)),
            ("a_at", json!(f.at)),
            ("a_actor", json!(f.actor)),
            ("a_role", json!(f.role)),
            ("a_action", json!(f.action)),
            ("a_from", json!(f.from)),
            ("a_to", json!(f.to)),
            ("a_note", json!(f.note)),
            ("a_evidence", json!(evidence)),
            ("a_payload", json!(canonical_json(&f.payload))),
            ("a_prev_hash", json!(self.prev_hash)),
            ("a_hash", json!(self.hash)),
        ] {
            row.insert(key.to_string(), value);
        }
        Ok(())
    }
}

/// Chains a record after `head` (read from the case row in the same transaction).
pub(super) fn chain(head: &Head, entry: &Entry<'_>) -> Chained {
    let fields = Fields {
        case_id: entry.case_id,
        seq: head.seq + 1,
        at: entry.at,
        actor: entry.actor.to_string(),
        role: entry.role.map(|r| r.as_str().to_string()),
        action: entry.action.to_string(),
        from: entry.from.map(|s| s.as_str().to_string()),
        to: entry.to.as_str().to_string(),
        note: entry.note.map(str::to_string),
        evidence: entry.evidence.to_vec(),
        payload: entry.payload.clone(),
    };
    let hash = fields.hash(&head.hash);
    Chained {
        fields,
        prev_hash: head.hash.clone(),
        hash,
    }
}

/// Appends a record after `head`; returns the new head, which the caller writes on the case row in
/// the same transaction ([`move_head`], or with its own update of the case).
pub(super) async fn append(
    conn: &mut AnyConnection,
    dialect: Dialect,
    head: &Head,
    entry: &Entry<'_>,
) -> Result<Head, CaseStoreError> {
    let record = chain(head, entry);
    let mut b = SqlBuilder::new(dialect, "");
    record.push_insert(&mut b, None)?;
    b.build()?.execute(&mut *conn).await.with_context(|| {
        format!(
            "Failed to append to the audit trail of case {}",
            entry.case_id
        )
    })?;
    Ok(record.head())
}

/// Writes the chain's new head on the case row.
pub(super) async fn move_head(
    conn: &mut AnyConnection,
    case_id: CaseId,
    head: &Head,
) -> Result<(), CaseStoreError> {
    sqlx::query("UPDATE cases SET audit_seq = $1, audit_hash = $2 WHERE id = $3")
        .bind(head.seq)
        .bind(&head.hash)
        .bind(case_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Store {
    /// The audit records of a case, in order: its timeline.
    pub async fn timeline(&self, case_id: CaseId) -> Result<Vec<AuditRecord>, CaseStoreError> {
        // Tells "no such case" from "a case without records" (which verification reports).
        self.case_head(case_id)
            .await?
            .ok_or_else(|| CaseStoreError::NotFound(format!("case {case_id}")))?;
        let rows = sqlx::query("SELECT * FROM case_audit WHERE case_id = $1 ORDER BY seq")
            .bind(case_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(record_from_row)
            .collect::<anyhow::Result<_>>()?)
    }

    /// Checks one case's chain (for `cityops audit verify` and the case page).
    pub async fn verify_audit(&self, case_id: CaseId) -> Result<AuditVerdict, CaseStoreError> {
        let head = self.case_head(case_id).await?;
        let rows = sqlx::query("SELECT * FROM case_audit WHERE case_id = $1 ORDER BY seq")
            .bind(case_id)
            .fetch_all(&self.pool)
            .await?;
        if head.is_none() && rows.is_empty() {
            return Err(CaseStoreError::NotFound(format!("case {case_id}")));
        }
        let stored: Vec<Stored> = rows.iter().map(stored_from_row).collect();
        Ok(verify_chain(head.as_ref(), &stored))
    }

    /// Checks every case's chain, in case id order, a batch of cases at a time; also reports audit
    /// records of cases that do not exist.
    pub async fn verify_all_audits(&self) -> Result<Vec<(CaseId, AuditVerdict)>, CaseStoreError> {
        let mut verdicts = Vec::new();
        let mut after: CaseId = 0;
        loop {
            let heads: Vec<(CaseId, i64, String)> = sqlx::query_as(
                "SELECT id, audit_seq, audit_hash FROM cases WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(VERIFY_BATCH)
            .fetch_all(&self.pool)
            .await?;
            let (Some(first), Some(last)) = (heads.first(), heads.last()) else {
                break;
            };
            let rows = sqlx::query(
                "SELECT * FROM case_audit WHERE case_id BETWEEN $1 AND $2 ORDER BY case_id, seq",
            )
            .bind(first.0)
            .bind(last.0)
            .fetch_all(&self.pool)
            .await?;
            let mut by_case: BTreeMap<CaseId, Vec<Stored>> = BTreeMap::new();
            for row in &rows {
                let stored = stored_from_row(row);
                by_case.entry(stored.case_id).or_default().push(stored);
            }
            for (id, seq, hash) in &heads {
                let chain = by_case.remove(id).unwrap_or_default();
                verdicts.push((*id, verify_chain(Some(&(*seq, hash.clone())), &chain)));
            }
            after = last.0;
        }
        let orphans: Vec<CaseId> = sqlx::query_scalar(
            "SELECT DISTINCT case_id FROM case_audit WHERE case_id NOT IN (SELECT id FROM cases) ORDER BY case_id",
        )
        .fetch_all(&self.pool)
        .await?;
        for id in orphans {
            verdicts.push((id, self.verify_audit(id).await?));
        }
        verdicts.sort_by_key(|(id, _)| *id);
        Ok(verdicts)
    }

    /// The audit head kept on the case (last seq and hash), `None` if there is no such case.
    async fn case_head(&self, case_id: CaseId) -> Result<Option<(i64, String)>, CaseStoreError> {
        Ok(
            sqlx::query_as("SELECT audit_seq, audit_hash FROM cases WHERE id = $1")
                .bind(case_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}

/// Walks a chain in seq order and stops at the first fault.
fn verify_chain(head: Option<&(i64, String)>, chain: &[Stored]) -> AuditVerdict {
    let verdict = |first_bad: Option<(i64, AuditFault)>| AuditVerdict {
        ok: first_bad.is_none(),
        records: chain.len() as u64,
        first_bad,
    };
    let Some((head_seq, head_hash)) = head else {
        let seq = chain.first().map_or(0, |r| r.seq);
        return verdict(Some((seq, AuditFault::NoCase)));
    };
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS_HASH;
    for record in chain {
        if record.seq != expected_seq {
            let fault = AuditFault::Missing { next: record.seq };
            return verdict(Some((expected_seq, fault)));
        }
        if record.seq > *head_seq {
            let fault = AuditFault::BeyondHead {
                head_seq: *head_seq,
            };
            return verdict(Some((record.seq, fault)));
        }
        if record.prev_hash != prev_hash {
            return verdict(Some((record.seq, AuditFault::BrokenLink)));
        }
        match &record.fields {
            Err(reason) => {
                let fault = AuditFault::Unreadable {
                    reason: reason.clone(),
                };
                return verdict(Some((record.seq, fault)));
            }
            Ok(fields) if fields.hash(prev_hash) != record.hash => {
                return verdict(Some((record.seq, AuditFault::Altered)));
            }
            Ok(_) => {}
        }
        prev_hash = &record.hash;
        expected_seq += 1;
    }
    let last_seq = expected_seq - 1;
    if last_seq < *head_seq {
        let fault = AuditFault::Truncated {
            head_seq: *head_seq,
        };
        return verdict(Some((last_seq + 1, fault)));
    }
    if prev_hash != head_hash {
        return verdict(Some((last_seq, AuditFault::HeadMismatch)));
    }
    verdict(None)
}

fn stored_from_row(row: &AnyRow) -> Stored {
    let fields = || -> Result<Fields, String> {
        let evidence: String = row.try_get("evidence").map_err(|e| e.to_string())?;
        let payload: String = row.try_get("payload").map_err(|e| e.to_string())?;
        Ok(Fields {
            case_id: row.try_get("case_id").map_err(|e| e.to_string())?,
            seq: row.try_get("seq").map_err(|e| e.to_string())?,
            at: row.try_get("at").map_err(|e| e.to_string())?,
            actor: row.try_get("actor").map_err(|e| e.to_string())?,
            role: row.try_get("role").map_err(|e| e.to_string())?,
            action: row.try_get("action").map_err(|e| e.to_string())?,
            from: row.try_get("from_state").map_err(|e| e.to_string())?,
            to: row.try_get("to_state").map_err(|e| e.to_string())?,
            note: row.try_get("note").map_err(|e| e.to_string())?,
            evidence: serde_json::from_str(&evidence)
                .map_err(|e| format!("evidence {evidence:?}: {e}"))?,
            payload: serde_json::from_str(&payload).map_err(|e| format!("payload: {e}"))?,
        })
    };
    Stored {
        case_id: row.try_get("case_id").unwrap_or_default(),
        seq: row.try_get("seq").unwrap_or_default(),
        fields: fields(),
        prev_hash: row.try_get("prev_hash").unwrap_or_default(),
        hash: row.try_get("hash").unwrap_or_default(),
    }
}

fn record_from_row(row: &AnyRow) -> anyhow::Result<AuditRecord> {
    let case_id: i64 = row.try_get("case_id")?;
    let seq: i64 = row.try_get("seq")?;
    let context = || format!("audit record {seq} of case {case_id}");
    let role: Option<String> = row.try_get("role")?;
    let from: Option<String> = row.try_get("from_state")?;
    let to: String = row.try_get("to_state")?;
    let evidence: String = row.try_get("evidence")?;
    let payload: String = row.try_get("payload")?;
    Ok(AuditRecord {
        case_id,
        seq,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        role: role
            .map(|r| Role::parse(&r).with_context(|| format!("{}: role {r:?}", context())))
            .transpose()?,
        action: row.try_get("action")?,
        from_state: from
            .map(|s| CaseState::parse(&s).with_context(|| format!("{}: state {s:?}", context())))
            .transpose()?,
        to_state: CaseState::parse(&to).with_context(|| format!("{}: state {to:?}", context()))?,
        note: row.try_get("note")?,
        evidence: serde_json::from_str(&evidence).with_context(context)?,
        payload: serde_json::from_str(&payload).with_context(context)?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Compact JSON with the keys of every object sorted (byte order), whatever the map type.
pub(super) fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_and_has_no_spaces() {
        let value: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [true, null], "x": "é\"\n"}}"#).unwrap();
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"x":"é\"\n","y":[true,null]},"b":1}"#
        );
    }

    #[test]
    fn the_hash_is_sha256_of_prev_then_record_in_hex() {
        // sha256("abc"), the FIPS 180-2 example, through the same hex writer.
        let mut hasher = Sha256::new();
        hasher.update(b"abc");
        assert_eq!(
            hex(&hasher.finalize()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let fields = Fields {
            case_id: 1,
            seq: 1,
            at: 5,
            actor: "a".into(),
            role: None,
            action: "report".into(),
            from: None,
            to: "reported".into(),
            note: None,
            evidence: vec![],
            payload: json!({}),
        };
        assert_eq!(
            fields.canonical(),
            r#"[1,1,5,"a",null,"report",null,"reported",null,[],{}]"#
        );
        let mut hasher = Sha256::new();
        hasher.update(GENESIS_HASH.as_bytes());
        hasher.update(fields.canonical().as_bytes());
        assert_eq!(fields.hash(GENESIS_HASH), hex(&hasher.finalize()));
        assert_ne!(fields.hash(GENESIS_HASH), fields.hash(&"1".repeat(64)));
    }
}
