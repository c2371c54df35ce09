//! Row outcomes and the report: the checklist's tables with status and evidence, as Markdown
//! (for a pull request or a release) or JSON (for automation), and the exit code.

use super::checklist::{SECTIONS, Section};
use serde_json::{Value, json};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Warn,
    NotApplicable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Warn => "WARN",
            Status::NotApplicable => "N/A",
        }
    }
}

/// What one check found for one row. `required`: the gate passes only if this row is PASS.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub required: bool,
    pub evidence: String,
}

impl Outcome {
    pub fn pass(evidence: impl Into<String>) -> Self {
        Self {
            status: Status::Pass,
            required: true,
            evidence: evidence.into(),
        }
    }
    pub fn fail(evidence: impl Into<String>) -> Self {
        Self {
            status: Status::Fail,
            required: true,
            evidence: evidence.into(),
        }
    }
    /// A warning: never blocks the gate.
    pub fn warn(evidence: impl Into<String>) -> Self {
        Self {
            status: Status::Warn,
            required: false,
            evidence: evidence.into(),
        }
    }
    /// Not applicable to this target (or not observable from outside): never blocks the gate.
    pub fn na(evidence: impl Into<String>) -> Self {
        Self {
            status: Status::NotApplicable,
            required: false,
            evidence: evidence.into(),
        }
    }
    /// A required row that could not be verified with what the run was given (e.g. no
    /// `--database-url`): blocks the gate, since nobody checked it.
    pub fn unverified(evidence: impl Into<String>) -> Self {
        Self {
            status: Status::NotApplicable,
            required: true,
            evidence: evidence.into(),
        }
    }
    /// PASS when `ok`, else FAIL.
    pub fn check(ok: bool, evidence: impl Into<String>) -> Self {
        if ok {
            Self::pass(evidence)
        } else {
            Self::fail(evidence)
        }
    }
    /// The same outcome, not blocking the gate (a recommended row).
    pub fn optional(mut self) -> Self {
        if self.status == Status::Fail {
            self.status = Status::Warn;
        }
        self.required = false;
        self
    }
    pub fn blocks(&self) -> bool {
        self.status == Status::Fail || (self.required && self.status != Status::Pass)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ko,
    En,
}

#[derive(Default)]
pub struct Report {
    pub target: String,
    pub outcomes: HashMap<&'static str, Outcome>,
    pub elapsed_ms: u128,
}

impl Report {
    pub fn set(&mut self, id: &'static str, outcome: Outcome) {
        debug_assert!(
            super::checklist::all_ids().any(|i| i == id),
            "unknown row {id}"
        );
        self.outcomes.insert(id, outcome);
    }

    /// One outcome for several rows: the rows a check could not reach share one reason.
    pub fn set_all(&mut self, ids: &[&'static str], outcome: &Outcome) {
        for id in ids {
            self.set(id, outcome.clone());
        }
    }

    fn outcome(&self, id: &str) -> Outcome {
        self.outcomes
            .get(id)
            .cloned()
            .unwrap_or_else(|| Outcome::na("not checked"))
    }

    /// Ids of rows that keep the gate shut.
    pub fn blocking(&self) -> Vec<&'static str> {
        super::checklist::all_ids()
            .filter(|id| self.outcome(id).blocks())
            .collect()
    }

    pub fn exit_code(&self) -> u8 {
        if self.blocking().is_empty() { 0 } else { 1 }
    }

    pub fn counts(&self) -> [(Status, usize); 4] {
        let mut c = [
            (Status::Pass, 0),
            (Status::Fail, 0),
            (Status::Warn, 0),
            (Status::NotApplicable, 0),
        ];
        for id in super::checklist::all_ids() {
            let s = self.outcome(id).status;
            for slot in c.iter_mut() {
                if slot.0 == s {
                    slot.1 += 1;
                }
            }
        }
        c
    }

    pub fn summary_line(&self) -> String {
        let c = self.counts();
        let blocking = self.blocking();
        format!(
            "preflight {}: {} PASS, {} FAIL, {} WARN, {} N/A in {} ms{}",
            if blocking.is_empty() {
                "passed"
            } else {
                "FAILED"
            },
            c[0].1,
            c[1].1,
            c[2].1,
            c[3].1,
            self.elapsed_ms,
            if blocking.is_empty() {
                String::new()
            } else {
                format!("; blocking rows: {}", blocking.join(", "))
            }
        )
    }

    pub fn to_json(&self, lang: Lang) -> Value {
        let sections: Vec<Value> = SECTIONS
            .iter()
            .map(|s| {
                let (title, columns, note) = texts(s, lang);
                let rows: Vec<Value> = s
                    .rows
                    .iter()
                    .map(|r| {
                        let o = self.outcome(r.id);
                        json!({
                            "id": r.id,
                            "cells": if lang == Lang::Ko { r.ko } else { r.en },
                            "extra": r.extra,
                            "status": o.status.as_str(),
                            "required": o.required,
                            "evidence": o.evidence,
                        })
                    })
                    .collect();
                json!({"number": s.number, "title": title, "columns": columns, "note": note, "rows": rows})
            })
            .collect();
        let c = self.counts();
        json!({
            "target": self.target,
            "lang": if lang == Lang::Ko { "ko" } else { "en" },
            "passed": self.blocking().is_empty(),
            "exitCode": self.exit_code(),
            "elapsedMs": self.elapsed_ms as u64,
            "summary": {"pass": c[0].1, "fail": c[1].1, "warn": c[2].1, "na": c[3].1,
                        "blocking": self.blocking()},
            "sections": sections,
        })
    }

    pub fn to_markdown(&self, lang: Lang) -> String {
        let mut out = String::new();
        let (heading, status_h, evidence_h, extra_mark) = match lang {
            Lang::Ko => (
                "# 프로덕션 체크리스트 preflight",
                "상태",
                "근거",
                " (추가 점검)",
            ),
            Lang::En => (
                "# Production checklist preflight",
                "status",
                "evidence",
                " (extra check)",
            ),
        };
        out.push_str(&format!("{heading}\n\n`{}`\n\n", self.target));
        out.push_str(&format!("**{}**\n\n", self.summary_line()));
        for s in SECTIONS {
            let (title, columns, note) = texts(s, lang);
            out.push_str(&format!("## {}. {title}\n\n", s.number));
            let mut header: Vec<&str> = columns.to_vec();
            header.push(status_h);
            header.push(evidence_h);
            out.push_str(&format!("| {} |\n", header.join(" | ")));
            out.push_str(&format!("|{}\n", " --- |".repeat(header.len())));
            for r in s.rows {
                let o = self.outcome(r.id);
                let mut cells: Vec<String> = (if lang == Lang::Ko { r.ko } else { r.en })
                    .iter()
                    .map(|c| cell(c))
                    .collect();
                if r.extra
                    && let Some(first) = cells.first_mut()
                {
                    first.push_str(extra_mark);
                }
                cells.push(format!("**{}**", o.status.as_str()));
                cells.push(cell(&o.evidence));
                out.push_str(&format!("| {} |\n", cells.join(" | ")));
            }
            if !note.is_empty() {
                out.push_str(&format!("\n{note}\n"));
            }
            out.push('\n');
        }
        out
    }
}

fn texts(s: &Section, lang: Lang) -> (&'static str, &'static [&'static str], &'static str) {
    match lang {
        Lang::Ko => (s.title_ko, s.columns_ko, s.note_ko),
        Lang::En => (s.title_en, s.columns_en, s.note_en),
    }
}

/// A Markdown table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_blocks_on_fail_and_unverified_required_rows() {
        let mut r = Report::default();
        for id in super::super::checklist::all_ids() {
            r.set(id, Outcome::pass("ok"));
        }
        assert_eq!(r.exit_code(), 0);
        r.set("perf.bundle", Outcome::warn("no storefront"));
        assert_eq!(r.exit_code(), 0);
        r.set("schema.indexes", Outcome::unverified("no --database-url"));
        assert_eq!(r.exit_code(), 1);
        assert_eq!(r.blocking(), vec!["schema.indexes"]);
        let md = r.to_markdown(Lang::Ko);
        assert!(md.contains("## 1. 스키마 & 제약 조건"));
        assert!(md.contains(
            "| payments.provider + payments.provider_tx_id UNIQUE | 필수 | **PASS** | ok |"
        ));
        let j = r.to_json(Lang::En);
        assert_eq!(j["exitCode"], 1);
        assert_eq!(j["sections"][0]["rows"][4]["status"], "N/A");
    }
}
