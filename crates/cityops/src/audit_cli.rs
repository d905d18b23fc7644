//! `cityops audit verify`: checks every case's hash-chained audit trail and reports each case whose
//! chain is broken, so tampering done with direct database access is found.

use std::io::Write;

use cityops_store::Store;
use cityops_store::cases::AuditFault;

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSummary {
    pub cases: usize,
    pub records: u64,
    pub failed: usize,
}

/// Verifies every chain, writing one line per failing case (id, number, record seq, reason) and a
/// summary line to `out`.
pub async fn verify(store: &Store, out: &mut impl Write) -> anyhow::Result<AuditSummary> {
    let verdicts = store.verify_all_audits().await?;
    let mut summary = AuditSummary {
        cases: verdicts.len(),
        records: 0,
        failed: 0,
    };
    for (case_id, verdict) in &verdicts {
        summary.records += verdict.records;
        if verdict.ok {
            continue;
        }
        summary.failed += 1;
        // The number is what people quote; records of a case that no longer exists have none.
        let number = match store.case(*case_id).await {
            Ok(case) => case.number.to_string(),
            Err(_) => "-".to_string(),
        };
        let (seq, reason) = match &verdict.first_bad {
            Some((seq, fault)) => (seq.to_string(), fault.to_string()),
            None => ("-".to_string(), AuditFault::HeadMismatch.to_string()),
        };
        writeln!(out, "FAIL case {case_id} ({number}) record {seq}: {reason}")?;
    }
    writeln!(
        out,
        "{} of {} cases failed audit verification ({} records checked)",
        summary.failed, summary.cases, summary.records
    )?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case_fixtures::{Cases, t};
    use cityops_core::case::{Action, Role};

    #[tokio::test]
    async fn a_tampered_record_is_reported_with_its_case_and_seq() {
        let cases = Cases::memory().await;
        let first = cases.report(t("2026-04-10 09:00")).await;
        cases
            .act(
                &first,
                Action::Accept,
                Role::Operator,
                t("2026-04-10 09:05"),
            )
            .await;
        let second = cases.report(t("2026-04-10 09:10")).await;

        let mut out = Vec::new();
        let clean = verify(&cases.store, &mut out).await.unwrap();
        assert_eq!(
            clean,
            AuditSummary {
                cases: 2,
                records: 3,
                failed: 0
            }
        );

        // An attacker with database access: drop the guard, then rewrite history.
        sqlx::query("DROP TRIGGER case_audit_no_update")
            .execute(cases.store.pool())
            .await
            .unwrap();
        sqlx::query("UPDATE case_audit SET actor = 'someone-else' WHERE case_id = ? AND seq = 2")
            .bind(first.id)
            .execute(cases.store.pool())
            .await
            .unwrap();

        let mut out = Vec::new();
        let summary = verify(&cases.store, &mut out).await.unwrap();
        assert_eq!(summary.failed, 1);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with(&format!(
                "FAIL case {} ({}) record 2:",
                first.id, first.number
            )),
            "{text}"
        );
        assert!(lines[0].contains("does not match its hash"), "{text}");
        assert!(!text.contains(&format!("case {} ", second.id)), "{text}");
        assert_eq!(
            lines[1],
            "1 of 2 cases failed audit verification (3 records checked)"
        );
    }
}
