/* The closed set of finding kinds of DESIGN §12: name, default severity, Japanese label — one table. */
#include "audit.h"

static const struct {
        const char *name;
        AuditSeverity severity;
        const char *ja;
} kinds[_AUDIT_KIND_MAX] = {
        [AUDIT_OUTSIDE_HOURS] = {"outside-hours", AUDIT_MEDIUM, "業務時間外の利用"},
        [AUDIT_CARD_ON_TWO_TERMINALS] = {"card-on-two-terminals", AUDIT_HIGH,
                                         "同一カードの複数端末同時利用"},
        [AUDIT_SUSPENDED_CARD_USED] = {"suspended-card-used", AUDIT_HIGH, "資格停止カードの使用"},
        [AUDIT_RETURNED_CARD_USED] = {"returned-card-used", AUDIT_HIGH, "返納済みカードの使用"},
        [AUDIT_PIN_FAILURES_BURST] = {"pin-failures-burst", AUDIT_MEDIUM, "暗証番号・パスワードの連続誤り"},
        [AUDIT_FINGER_FAILURES_BURST] = {"finger-failures-burst", AUDIT_MEDIUM, "生体認証の連続失敗"},
        [AUDIT_CARD_LEFT] = {"card-left", AUDIT_LOW, "カードの置き忘れ"},
        [AUDIT_SECRET_OVERDUE] = {"secret-overdue", AUDIT_MEDIUM, "暗証番号・パスワードの変更期限切れ"},
        [AUDIT_GROUP_WITHOUT_MEMBER] = {"group-without-member", AUDIT_HIGH, "グループカードの個人識別なし"},
        [AUDIT_LENDING_SUSPECTED] = {"lending-suspected", AUDIT_HIGH, "カード貸与の疑い"},
        [AUDIT_LOCK_BYPASSED] = {"lock-bypassed", AUDIT_HIGH, "画面ロックの回避"},
        [AUDIT_LOG_GAP] = {"log-gap", AUDIT_HIGH, "操作履歴の欠落"},
        [AUDIT_LOG_FORK] = {"log-fork", AUDIT_HIGH, "操作履歴の分岐"},
        [AUDIT_LOG_BAD_SIGNATURE] = {"log-bad-signature", AUDIT_HIGH, "操作履歴の署名不正"},
        [AUDIT_TERMINAL_SILENT] = {"terminal-silent", AUDIT_MEDIUM, "端末からの送信途絶"},
        [AUDIT_APP_OPS_UNUSUAL] = {"app-ops-unusual", AUDIT_MEDIUM, "業務操作件数の異常"},
        [AUDIT_EMERGENCY] = {"emergency", AUDIT_HIGH, "緊急ロック"},
};

const char *audit_kind_name(AuditKind k)
{
        return k < _AUDIT_KIND_MAX ? kinds[k].name : "?";
}

AuditSeverity audit_kind_severity(AuditKind k)
{
        return k < _AUDIT_KIND_MAX ? kinds[k].severity : AUDIT_HIGH;
}

const char *audit_kind_label_ja(AuditKind k)
{
        return k < _AUDIT_KIND_MAX ? kinds[k].ja : "?";
}

const char *audit_severity_name(AuditSeverity s)
{
        return s == AUDIT_HIGH ? "high" : s == AUDIT_MEDIUM ? "medium" : "low";
}
