//! The production checklist's section tables (sections 1–9), restated as data in Korean (the
//! authoritative original) and English, so the preflight can print them with a status and the
//! evidence filled in. Each row has a stable `id`; the checks report against those ids. Rows
//! marked `extra` are checks the preflight adds under a section (they are not in the
//! checklist's own tables) and are printed after its rows.
//!
//! Only the columns that describe the item are kept; the checklist's empty status columns
//! ("status", "verified", "measured") become the preflight's status and evidence, and the
//! "current implementation" column of section 3 (which described the system this service
//! replaced) is left out.

pub struct Section {
    pub number: u8,
    pub title_ko: &'static str,
    pub title_en: &'static str,
    pub columns_ko: &'static [&'static str],
    pub columns_en: &'static [&'static str],
    /// Text printed under the table (alert thresholds, rotation policy), ko and en.
    pub note_ko: &'static str,
    pub note_en: &'static str,
    pub rows: &'static [Row],
}

pub struct Row {
    pub id: &'static str,
    pub ko: &'static [&'static str],
    pub en: &'static [&'static str],
    pub extra: bool,
}

const fn seed(id: &'static str, ko: &'static [&'static str], en: &'static [&'static str]) -> Row {
    Row {
        id,
        ko,
        en,
        extra: false,
    }
}

const fn extra(id: &'static str, ko: &'static [&'static str], en: &'static [&'static str]) -> Row {
    Row {
        id,
        ko,
        en,
        extra: true,
    }
}

pub const SECTIONS: &[Section] = &[
    Section {
        number: 1,
        title_ko: "스키마 & 제약 조건",
        title_en: "Schema & constraints",
        columns_ko: &["항목", "필요 여부"],
        columns_en: &["item", "required"],
        note_ko: "누락 시 마이그레이션 추가 후 재배포. 중복 결제/중복 수강 방지 핵심.",
        note_en: "If missing: add a migration and redeploy. These are the core defence against duplicate payments and duplicate enrollments.",
        rows: &[
            seed(
                "schema.payments_provider_unique",
                &["payments.provider + payments.provider_tx_id UNIQUE", "필수"],
                &[
                    "payments.provider + payments.provider_tx_id UNIQUE",
                    "required",
                ],
            ),
            seed(
                "schema.enrollments_user_course_unique",
                &["enrollments.user_id + enrollments.course_id UNIQUE", "필수"],
                &[
                    "enrollments.user_id + enrollments.course_id UNIQUE",
                    "required",
                ],
            ),
            seed(
                "schema.payments_enrollment_fk",
                &[
                    "payments.enrollment_id FK(enrollments.id) ON UPDATE CASCADE",
                    "권장",
                ],
                &[
                    "payments.enrollment_id FK(enrollments.id) ON UPDATE CASCADE",
                    "recommended",
                ],
            ),
            seed(
                "schema.exam_attempts_fk",
                &["exam_attempts(enrollment_id) FK", "존재 시 무결성 확인"],
                &[
                    "exam_attempts(enrollment_id) FK",
                    "if present, verify integrity",
                ],
            ),
            extra(
                "schema.indexes",
                &[
                    "조회·정산이 쓰는 인덱스 (주문 상태, 시험 응시, 환불)",
                    "필수",
                ],
                &[
                    "indexes the queries rely on (order status, exam attempts, refunds)",
                    "required",
                ],
            ),
        ],
    },
    Section {
        number: 2,
        title_ko: "시크릿 & 환경 변수",
        title_en: "Secrets & environment",
        columns_ko: &["이름", "위치", "설명"],
        columns_en: &["name", "where", "what"],
        note_ko: "회전 정책: WEBHOOK_SECRET 분기 1회, SERVICE_ROLE 연 1회 (사고 시 즉시 회전).",
        note_en: "Rotation policy: WEBHOOK_SECRET once a quarter, SERVICE_ROLE once a year (immediately after an incident).",
        rows: &[
            seed(
                "secrets.toss_secret_key",
                &["TOSS_SECRET_KEY", "서버 시크릿", "Toss Server Key"],
                &[
                    "TOSS_SECRET_KEY",
                    "server secret",
                    "Toss server (secret) key",
                ],
            ),
            seed(
                "secrets.service_role",
                &[
                    "SUPABASE_SERVICE_ROLE_KEY",
                    "서버 시크릿",
                    "DB server-side 권한",
                ],
                &[
                    "SUPABASE_SERVICE_ROLE_KEY",
                    "server secret",
                    "server-side privilege",
                ],
            ),
            seed(
                "secrets.webhook_secret",
                &["WEBHOOK_SECRET", "서버 시크릿", "HMAC 서명 키"],
                &["WEBHOOK_SECRET", "server secret", "HMAC signing key"],
            ),
            seed(
                "secrets.client_key",
                &["VITE_TOSS_CLIENT_KEY", "FE .env", "Toss client key"],
                &["VITE_TOSS_CLIENT_KEY", "front-end .env", "Toss client key"],
            ),
            seed(
                "secrets.supabase_url",
                &["VITE_SUPABASE_URL", "FE .env", "프로젝트 URL"],
                &["VITE_SUPABASE_URL", "front-end .env", "project URL"],
            ),
            seed(
                "secrets.anon_key",
                &["VITE_SUPABASE_ANON_KEY", "FE .env", "anon key"],
                &["VITE_SUPABASE_ANON_KEY", "front-end .env", "anon key"],
            ),
            extra(
                "secrets.webhook_rotation",
                &[
                    "WEBHOOK_SECRET 회전 시점",
                    "WEBHOOK_SECRET_ROTATED_AT",
                    "분기 1회 회전",
                ],
                &[
                    "WEBHOOK_SECRET age",
                    "WEBHOOK_SECRET_ROTATED_AT",
                    "rotated once a quarter",
                ],
            ),
            extra(
                "secrets.never_echoed",
                &[
                    "시크릿 비노출",
                    "모든 응답·로그",
                    "알려진 시크릿 값이 어디에도 나오지 않음",
                ],
                &[
                    "secrets never echoed",
                    "every answer and log line",
                    "no known secret value appears",
                ],
            ),
            extra(
                "secrets.production_mode",
                &[
                    "COURSEPAY_ENV=production",
                    "서버 환경",
                    "운영 기동 검사 통과",
                ],
                &[
                    "COURSEPAY_ENV=production",
                    "server environment",
                    "passes the production start-up checks",
                ],
            ),
        ],
    },
    Section {
        number: 3,
        title_ko: "HMAC & 멱등 구현 상태",
        title_en: "HMAC & idempotency",
        columns_ko: &["항목", "목표", "개선 우선순위"],
        columns_en: &["item", "target", "priority"],
        note_ko: "",
        note_en: "",
        rows: &[
            seed(
                "hmac.algorithm",
                &["HMAC 서명 알고리즘", "HMAC-SHA256", "상"],
                &["HMAC signature algorithm", "HMAC-SHA256", "high"],
            ),
            seed(
                "hmac.timestamp",
                &["timestamp 허용 편차", "300s", "상"],
                &["timestamp tolerance", "300 s", "high"],
            ),
            seed(
                "hmac.reuse",
                &["서명 재사용 차단", "10분 window", "상"],
                &["signature reuse blocking", "10-minute window", "high"],
            ),
            seed(
                "hmac.idempotency_store",
                &["idempotency 저장소", "Redis/KV/Table", "상"],
                &["idempotency store", "Redis/KV/Table", "high"],
            ),
            seed(
                "hmac.paymentkey_cache",
                &["paymentKey 기반 캐시", "성공 confirm 재호출 200", "중"],
                &[
                    "paymentKey-based cache",
                    "a repeated successful confirm returns 200",
                    "medium",
                ],
            ),
        ],
    },
    Section {
        number: 4,
        title_ko: "로그 & 모니터링",
        title_en: "Logs & monitoring",
        columns_ko: &["항목", "구현"],
        columns_en: &["item", "implementation"],
        note_ko: "필드 표준: request_id, function_name, provider, provider_tx_id, enrollment_id, course_id, user_id, status, error_code, latency_ms. 알람 기준(초기): E_AMOUNT_MISMATCH >= 1/1000 거래; 승인 실패율 > 2% (5분 이동 창); p95 latency > 1500ms (15분 지속).",
        note_en: "Standard fields: request_id, function_name, provider, provider_tx_id, enrollment_id, course_id, user_id, status, error_code, latency_ms. Initial alert thresholds: E_AMOUNT_MISMATCH >= 1 per 1000 transactions; approval failure rate > 2% (5-minute moving window); p95 latency > 1500 ms (sustained for 15 minutes).",
        rows: &[
            seed(
                "logs.json",
                &["구조화 JSON 로그", "한 줄에 JSON 객체 하나"],
                &["structured JSON logs", "one JSON object per line"],
            ),
            seed(
                "logs.request_id",
                &["request_id 전파", "프런트 → 서버 헤더(X-Request-Id)"],
                &[
                    "request_id propagation",
                    "front end → service via header X-Request-Id",
                ],
            ),
            seed(
                "logs.latency",
                &["Latency 측정", "처리 전후 시간"],
                &["latency measurement", "time before/after processing"],
            ),
            seed(
                "logs.dashboard",
                &["대시보드", "(선택: Logflare/Grafana)"],
                &["dashboard", "(optional: Logflare/Grafana)"],
            ),
            extra(
                "logs.metrics",
                &["/metrics 알람 규칙 시계열", "Prometheus 텍스트"],
                &[
                    "/metrics exposes the alert rules' series",
                    "Prometheus text",
                ],
            ),
            extra(
                "logs.alert_rules",
                &["알람 규칙 3개 적재", "초기 알람 기준 3개"],
                &[
                    "the three alert rules are loaded",
                    "the three initial thresholds",
                ],
            ),
        ],
    },
    Section {
        number: 5,
        title_ko: "성능",
        title_en: "Performance",
        columns_ko: &["항목", "목표", "액션 조건"],
        columns_en: &["item", "target", "action when exceeded"],
        note_ko: "",
        note_en: "",
        rows: &[
            seed(
                "perf.p95",
                &[
                    "p95 confirm",
                    "< 1500ms",
                    "초과 시: 네트워크 vs Toss API 분리 측정",
                ],
                &[
                    "p95 confirm",
                    "< 1500 ms",
                    "measure network vs Toss API separately",
                ],
            ),
            seed(
                "perf.round_trips",
                &[
                    "평균 DB round trips",
                    "<= 3",
                    "초과 시: upsert + select 묶기",
                ],
                &["average DB round trips", "<= 3", "combine upsert + select"],
            ),
            seed(
                "perf.bundle",
                &[
                    "JS 번들 사이즈 (app)",
                    "< 250KB gz",
                    "초과 시: dynamic import 분리",
                ],
                &[
                    "JS bundle size (app)",
                    "< 250 KB gz",
                    "split with dynamic import",
                ],
            ),
        ],
    },
    Section {
        number: 6,
        title_ko: "실패/회복 전략",
        title_en: "Failure / recovery",
        columns_ko: &["시나리오", "감지", "즉시 대응"],
        columns_en: &["scenario", "detection", "immediate response"],
        note_ko: "",
        note_en: "",
        rows: &[
            seed(
                "fail.toss_outage",
                &["Toss API 장애", "연속 5회 5xx", "사용자 안내 + 재시도 버튼"],
                &[
                    "Toss API outage",
                    "5 consecutive 5xx",
                    "tell the user + retry button",
                ],
            ),
            seed(
                "fail.db_lock",
                &["DB deadlock/lock", "latency 급증", "지연 로그 채집"],
                &["DB deadlock / lock", "latency spike", "collect slow logs"],
            ),
            seed(
                "fail.amount_mismatch",
                &[
                    "금액 불일치 다발",
                    "E_AMOUNT_MISMATCH 증가",
                    "일시 결제 중단 toggling",
                ],
                &[
                    "many amount mismatches",
                    "E_AMOUNT_MISMATCH rising",
                    "temporarily pause payments (toggle)",
                ],
            ),
            seed(
                "fail.sig_forgery",
                &[
                    "서명 위조 시도",
                    "E_WEBHOOK_INVALID_SIG 증가",
                    "IP 레이트리밋",
                ],
                &[
                    "signature forgery attempts",
                    "E_WEBHOOK_INVALID_SIG rising",
                    "IP rate limit",
                ],
            ),
        ],
    },
    Section {
        number: 7,
        title_ko: "배포 롤백 플랜",
        title_en: "Rollback plan",
        columns_ko: &["조건", "롤백 조치", "데이터 영향"],
        columns_en: &["condition", "rollback action", "data impact"],
        note_ko: "특정 커밋 기반 재배포 (IaC 스크립트 권장).",
        note_en: "Redeploy a specific earlier version from a known commit (infrastructure-as-code script recommended).",
        rows: &[
            seed(
                "rollback.approval_failure",
                &["승인 실패율 급증", "이전 버전 재배포", "없음"],
                &[
                    "approval failure rate spikes",
                    "redeploy the previous version",
                    "none",
                ],
            ),
            seed(
                "rollback.amount_mismatch",
                &[
                    "금액 불일치 폭증",
                    "confirm 함수 disable (임시)",
                    "신규 결제 불가",
                ],
                &[
                    "amount mismatches explode",
                    "disable the confirm function (temporarily)",
                    "no new payments",
                ],
            ),
            seed(
                "rollback.performance",
                &["성능 열화(p95>3s)", "CDN/Edge 지역 재평가", "없음"],
                &[
                    "performance degrades (p95 > 3 s)",
                    "re-evaluate CDN/edge region",
                    "none",
                ],
            ),
            extra(
                "rollback.readiness",
                &["준비 상태", "/healthz, /readyz", "—"],
                &["readiness", "/healthz, /readyz", "—"],
            ),
        ],
    },
    Section {
        number: 8,
        title_ko: "프런트엔드 연동 점검",
        title_en: "Front-end integration",
        columns_ko: &["항목", "기대 동작"],
        columns_en: &["item", "expected behaviour"],
        note_ko: "",
        note_en: "",
        rows: &[
            seed(
                "fe.invalidate",
                &[
                    "결제 성공 후 쿼리 invalidate",
                    "['enrollment',id], ['course',courseId]",
                ],
                &[
                    "invalidate queries after successful payment",
                    "['enrollment', id], ['course', courseId]",
                ],
            ),
            seed(
                "fe.clear_state",
                &[
                    "로컬 payment flow state 정리",
                    "success/fail 페이지에서 clear",
                ],
                &[
                    "clear local payment-flow state",
                    "cleared on the success/fail pages",
                ],
            ),
            seed(
                "fe.i18n",
                &["에러 코드 i18n 매핑", "ui.payment.error.* 존재"],
                &["error-code i18n mapping", "ui.payment.error.* exists"],
            ),
            seed(
                "fe.cors",
                &["CORS", "함수 허용"],
                &["CORS", "allowed for the function"],
            ),
        ],
    },
    Section {
        number: 9,
        title_ko: "QA 시나리오 (최소)",
        title_en: "QA scenarios (minimum)",
        columns_ko: &["케이스", "절차", "기대"],
        columns_en: &["case", "steps", "expected"],
        note_ko: "",
        note_en: "",
        rows: &[
            seed(
                "qa.normal",
                &[
                    "정상 결제",
                    "코스 A 10,000원 → Toss 테스트카드 승인",
                    "enrollment ENROLLED, payment 저장",
                ],
                &[
                    "normal payment",
                    "course A 10,000 KRW → Toss test card approves",
                    "enrollment ENROLLED, payment stored",
                ],
            ),
            seed(
                "qa.tamper",
                &[
                    "금액 변조",
                    "FE devtools amount 변경 후 confirm",
                    "400 + E_AMOUNT_MISMATCH",
                ],
                &[
                    "amount tampering",
                    "change amount in the browser devtools, then confirm",
                    "400 + E_AMOUNT_MISMATCH",
                ],
            ),
            seed(
                "qa.duplicate",
                &[
                    "중복 confirm",
                    "성공 후 동일 payload 재POST",
                    "200 + 동일 enrollment_id 반환 (no dup)",
                ],
                &[
                    "duplicate confirm",
                    "after success, POST the same payload again",
                    "200 + the same enrollment_id (no duplicate)",
                ],
            ),
            seed(
                "qa.network",
                &[
                    "네트워크 중단",
                    "승인 직후 탭 강제종료 → 재진입",
                    "강제 refresh 시 enrollment 존재",
                ],
                &[
                    "network interruption",
                    "force-close the tab right after approval → come back",
                    "on refresh the enrollment exists",
                ],
            ),
            seed(
                "qa.bad_signature",
                &[
                    "잘못된 서명",
                    "X-Signature 변조",
                    "401 E_WEBHOOK_INVALID_SIG",
                ],
                &[
                    "bad signature",
                    "tamper with X-Signature",
                    "401 E_WEBHOOK_INVALID_SIG",
                ],
            ),
        ],
    },
];

/// Every row id, for tests and for checking that each check reports against a known row.
pub fn all_ids() -> impl Iterator<Item = &'static str> {
    SECTIONS.iter().flat_map(|s| s.rows.iter().map(|r| r.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_have_both_languages_and_unique_ids() {
        let mut seen = std::collections::HashSet::new();
        for s in SECTIONS {
            assert_eq!(s.columns_ko.len(), s.columns_en.len());
            for r in s.rows {
                assert!(seen.insert(r.id), "duplicate id {}", r.id);
                assert_eq!(r.ko.len(), s.columns_ko.len(), "{}", r.id);
                assert_eq!(r.en.len(), s.columns_en.len(), "{}", r.id);
            }
        }
        assert_eq!(SECTIONS.len(), 9);
    }
}
