/* The D-Bus API of mamorid (org.mamori.Agent1), shared by the daemon, pam_mamori.so and mamorictl. */
#pragma once

/*
 * Bus: system. Name: org.mamori.Agent1. Object: /org/mamori/Agent1. Interface: org.mamori.Agent1.
 *
 * Properties (all read-only, PropertiesChanged emitted on change):
 *   State         s   "locked" | "authenticating" | "active"
 *   Operator      s   operator id of the active session, "" otherwise
 *   Method        s   while active: "card+pin", "group-card+password", "group-card+finger",
 *                     "finger+password", "vein+password"; "" otherwise
 *   Step          s   what a pending login waits for: "" (none) | "pin" | "finger" | "vein" |
 *                     "password" | "operator-id"
 *   Card          s   card id of the inserted card ("" when none or unreadable)
 *   Reader        s   reader holding that card ("")
 *   CardPresent   b
 *   PolicySerial  x   serial of the bundle in force, -1 when none
 *   Emergency     b   emergency lock in force
 *   LogWritable   b   false while the operation log cannot be written (logins refused)
 *   Sensors       as  the modalities a login WITHOUT a card can use now, in preference order:
 *                     "finger" while the libfprint sensor is open, "vein" while a vein plugin is
 *                     loaded and its reader open; empty: none (a card is the only way in). Not
 *                     signalled (a sensor opens in the background): read it when a login starts.
 *                     pam_mamori, with no card in the reader, starts StartBioLogin(user, Sensors[0]).
 *
 * Methods:
 *   StartLogin(s user) → (s card_id, i tries_left)
 *       Begins a card login for PAM user `user` ("" allowed with Accounts=shared). Needs a card in
 *       a reader; runs every check that needs no PIN (policy, emergency, certificate, card and
 *       operator status, office) and, when they pass, moves to "authenticating" and returns the
 *       card id and the PIN tries the card reports (-1 unknown). Refusals are errors (below).
 *   AnswerPin(s pin) → (s operator)
 *       Only in "authenticating" with Step "pin", and only from the caller that started it.
 *       A group card's PIN answers operator "" and leaves Step "finger" or "password"; with
 *       RequireFingerWithCard=yes an individual card's answers its operator and leaves Step
 *       "finger" (ScanFinger). Verifies the PIN on
 *       the card and the challenge signature; on success the state becomes "active" and the
 *       session is recorded (answer sent after the records are committed). A PIN that is not 6-8
 *       digits is refused as PinFormat before any card exchange (auth.fail reason "pin-format",
 *       no try spent) and the login stays "authenticating" for the next AnswerPin.
 *       A GROUP card's PIN and signature verified answer operator "" and the login stays
 *       "authenticating" with Step "password" or "finger" (agent.conf [Session] GroupMember=,
 *       default password): a member of the card's group must identify next.
 *   AnswerPassword(s operator_id, s password) → (s operator)
 *       Completes a login whose Step is "password". operator_id "" = the operator the login
 *       already identified (finger/vein); after a group card, the member's id (not a member:
 *       NotGroupMember, the login ends). A wrong password answers PasswordWrong
 *       "password-wrong delay=S" only after a delay that doubles per failure of that operator
 *       (1 s … 32 s, reset by a right password), and the login keeps waiting for the next try;
 *       no answer for that operator is given before the delay of its last failure has passed.
 *       The counts survive a restart of mamorid (PasswordDirectory/.failures).
 *       Success: session operator = that operator, Method "group-card+password" (or the bio
 *       method), records as AnswerPin's. Same callers as AnswerPin; SENSITIVE.
 *   ChangePassword(s old_password, s new_password) → ()
 *       Sets the active operator's password on this terminal. Only while "active", in a card
 *       session that holds its card or a session opened with a password; old_password must match
 *       when one is set ("" when none is). new_password: [Secrets] MinLength..1024 bytes
 *       (PasswordTooShort "password-too-short min=N"). Recorded as password.change. Callers: root
 *       and the seat's active session. SENSITIVE.
 *   PasswordAgeDays() → (i days, i max_days, i warn_days)
 *       age of the active operator's password on this terminal, -1 when none is set.
 *   ResetPassword(s operator) → ()
 *       Root only (PermissionDenied otherwise): removes operator's password on this terminal (they
 *       forgot it); their failure count starts again; their next password login is PasswordUnset
 *       until they set one in a card session (ChangePassword with old ""), as the first time.
 *       Recorded as enroll {action: reset, modality: password, login_uid: the caller's audit login
 *       uid when known}, answered after the record. PasswordUnset when none is set; LogUnwritable
 *       (nothing removed) when the log is not writable at the call — checked before the removal: should
 *       the record itself then fail, the password is gone already and the answer is the log's error.
 *       An active session of that operator opened with that password (finger, vein or group card +
 *       password) ends after the record: session.end reason password-reset, lock.
 *   CancelLogin() → ()
 *       Ends the caller's login. A call of that login still waiting (StartBioLogin, AnswerPin,
 *       AnswerPassword, ScanFinger) is answered Cancelled "cancelled"; a Lock or the agent stopping
 *       during a login answers it the same way, "cancelled: manual" / "cancelled: agent-stop".
 *   Lock() → ()                               ends the active session (reason "manual") and locks.
 *   ChangePin(s old_pin, s new_pin) → ()      on the inserted card; caller must be root, or the
 *                                             active session must hold that card. A new PIN
 *                                             under [Secrets] MinLength: PinTooShort
 *                                             "pin-too-short min=N" (never sent to the card); a
 *                                             new PIN the card refuses: PinInvalid. Both recorded
 *                                             as auth.fail with method "pin-change".
 *   RecordOperation(s kind, s subject, a{ss} fields) → (t seq)
 *       Records an app.op for the current operator; caller uid 0 or in group mamori-apps; only
 *       while "active". kind/subject ≤ 64 bytes, ≤ 16 fields of ≤ 64-byte keys, ≤ 256-byte values.
 *   StartBioLogin(s user, s modality) → (s operator, s step)
 *       No card: modality "finger" (the libfprint sensor) or "vein" (the [Biometric] VeinPlugin=
 *       reader). Moves to "authenticating" with Step "finger" or "vein" and answers after the
 *       touch: where the reader can identify, 1:N among the templates of operators allowed at
 *       this office (user ignored; with Accounts=per-operator the identified operator must be
 *       `user`, else WrongUser), else 1:1 against the templates of operator `user`. A reader that
 *       can only verify, with a `user` that names no operator of the bundle (a shared account):
 *       answers ("", "operator-id") at once, nothing started or recorded: ask the operator id and
 *       call again with it. After the touch Step
 *       is "password" (AnswerPassword; the session's Method is "finger+password" or
 *       "vein+password"). Refusals: FingerNoMatch / VeinNoMatch, FingerUnreadable (no usable
 *       touch after 3 retries) / VeinUnreadable (no usable capture), BioUnavailable (no reader, or
 *       it went away), and the operator's status (OperatorRetired …), each recorded as auth.fail
 *       with that method. CancelLogin, a lock, the agent stopping or the client going away cancel
 *       the scan; so does a card inserted meanwhile: the call then answers NotPending
 *       "cancelled: a card was inserted; …" (after CardPresent changed; no auth.fail).
 *   ScanFinger(s modality) → (s operator)
 *       Step "finger" after a card's PIN, from the client that started the login: a group card
 *       ([Session] GroupMember=finger): a member identifies, the session opens for the member
 *       (method "group-card+finger"), a non-member is NotGroupMember; an individual card with
 *       [Session] RequireFingerWithCard=yes: the card's operator's own finger opens the session
 *       (method "card+pin"), another operator's is LendingSuspected (auth.fail names that
 *       operator as finger_operator). Pulling the card cancels the scan (NoCard).
 *   EnrollFinger() → (s operator, u finger)
 *       Root or a process of the seat's active session holding the session's card; only in a
 *       "card+pin" session: enrols a print for the session's operator (slot 1-5), recorded as
 *       enroll {action: enrolled, modality: finger}. Signal EnrollProgress tells each stage. Ends
 *       with the session.
 *   EnrollVein() → (s operator, u slot)
 *       The same for the vein reader: a hand's template (slot 1-5), recorded as enroll {action:
 *       enrolled, modality: vein}. EnrollProgress: stage 0 with stages 0 first (the reader tells
 *       how many captures it needs with the first one), then one per capture.
 *   ListPrints() → (a(sux) prints)            root: (operator, slot, enrolled µs) of every print.
 *   DeletePrints(s operator) → (u deleted)    root: deletes an operator's prints, recorded as
 *                                             enroll {action: deleted, modality: finger}.
 *   ListTemplates() → (a(ssux) templates)     root: (modality, operator, slot, enrolled µs) of
 *                                             every fingerprint and vein template.
 *   DeleteTemplates(s operator, s modality) → (u deleted)
 *                                             root: deletes an operator's templates of one modality
 *                                             ("finger", "vein"), recorded as enroll {action:
 *                                             deleted, modality}. A policy that retires an operator
 *                                             deletes both (action: retired-deleted).
 *   PinAgeDays() → (i days, i max_days, i warn_days)
 *                                             age of the active operator's PIN or password: the
 *                                             policy's pin_changed, or a newer pin.change/
 *                                             password.change of that operator in this terminal's own
 *                                             log; -1 when unknown. max_days/warn_days: [Secrets]
 *                                             MaxAgeDays/WarnDays. For PAM's account step.
 *
 * Signals:
 *   StateChanged(s state, s operator, s reason)   reason: "login", "card-removed", "idle",
 *                                                 "manual", "reader-lost", "emergency", "log-unwritable",
 *                                                 "agent-start", "cancelled", or a refusal reason.
 *   EnrollProgress(s operator, i stage, i stages, b retry)   stage 0 at the start; retry: the touch
 *                                                 was not usable, touch again.
 *
 * Errors: org.mamori.Agent1.Error.<Name>, the message carrying the refusal reason string and, for
 * PinWrong, "pin-wrong tries=N". Names map 1:1 to the reasons of include/mamori/auth-reasons.h
 * (common/auth-reasons.c).
 */

#define MAMORI_DBUS_NAME      "org.mamori.Agent1"
#define MAMORI_DBUS_PATH      "/org/mamori/Agent1"
#define MAMORI_DBUS_INTERFACE "org.mamori.Agent1"

#define MAMORI_DBUS_ERROR_PREFIX "org.mamori.Agent1.Error."

#define MAMORI_ERROR_NO_CARD            MAMORI_DBUS_ERROR_PREFIX "NoCard"
#define MAMORI_ERROR_UNKNOWN_CARD       MAMORI_DBUS_ERROR_PREFIX "UnknownCard"
#define MAMORI_ERROR_CARD_SUSPENDED     MAMORI_DBUS_ERROR_PREFIX "CardSuspended"
#define MAMORI_ERROR_CARD_RETURNED      MAMORI_DBUS_ERROR_PREFIX "CardReturned"
#define MAMORI_ERROR_OPERATOR_SUSPENDED MAMORI_DBUS_ERROR_PREFIX "OperatorSuspended"
#define MAMORI_ERROR_OPERATOR_RETIRED   MAMORI_DBUS_ERROR_PREFIX "OperatorRetired"
#define MAMORI_ERROR_WRONG_OFFICE       MAMORI_DBUS_ERROR_PREFIX "WrongOffice"
#define MAMORI_ERROR_CERT_UNTRUSTED     MAMORI_DBUS_ERROR_PREFIX "CertUntrusted"
#define MAMORI_ERROR_CERT_EXPIRED       MAMORI_DBUS_ERROR_PREFIX "CertExpired"
#define MAMORI_ERROR_PIN_WRONG          MAMORI_DBUS_ERROR_PREFIX "PinWrong"
#define MAMORI_ERROR_PIN_BLOCKED        MAMORI_DBUS_ERROR_PREFIX "PinBlocked"
#define MAMORI_ERROR_SIGNATURE_INVALID  MAMORI_DBUS_ERROR_PREFIX "SignatureInvalid"
#define MAMORI_ERROR_POLICY_STALE       MAMORI_DBUS_ERROR_PREFIX "PolicyStale"
#define MAMORI_ERROR_EMERGENCY          MAMORI_DBUS_ERROR_PREFIX "Emergency"
#define MAMORI_ERROR_CARD_ERROR         MAMORI_DBUS_ERROR_PREFIX "CardError"
/* Not refusals of a card, but of the call: */
#define MAMORI_ERROR_WRONG_USER \
        MAMORI_DBUS_ERROR_PREFIX "WrongUser" /* per-operator: PAM user ≠ card's operator */
#define MAMORI_ERROR_BUSY           MAMORI_DBUS_ERROR_PREFIX "Busy"       /* another login is in progress */
#define MAMORI_ERROR_NOT_PENDING    MAMORI_DBUS_ERROR_PREFIX "NotPending" /* AnswerPin without StartLogin */
#define MAMORI_ERROR_NOT_ACTIVE     MAMORI_DBUS_ERROR_PREFIX "NotActive"  /* no active session */
#define MAMORI_ERROR_PERMISSION     MAMORI_DBUS_ERROR_PREFIX "PermissionDenied"
#define MAMORI_ERROR_LOG_UNWRITABLE MAMORI_DBUS_ERROR_PREFIX "LogUnwritable" /* fail closed */
#define MAMORI_ERROR_INVALID        MAMORI_DBUS_ERROR_PREFIX "InvalidArgument"
#define MAMORI_ERROR_LOG_DAMAGED \
        MAMORI_DBUS_ERROR_PREFIX "LogDamaged" /* the log's last records do not verify: quarantine it */
#define MAMORI_ERROR_TERMINAL_UNCONFIGURED \
        MAMORI_DBUS_ERROR_PREFIX "TerminalUnconfigured" /* no [Terminal] Id: enrol the terminal */
#define MAMORI_ERROR_PIN_FORMAT \
        MAMORI_DBUS_ERROR_PREFIX "PinFormat" /* AnswerPin: not 6-8 digits; the login still waits */
#define MAMORI_ERROR_FINGER_NO_MATCH   MAMORI_DBUS_ERROR_PREFIX "FingerNoMatch"
#define MAMORI_ERROR_FINGER_UNREADABLE MAMORI_DBUS_ERROR_PREFIX "FingerUnreadable"
#define MAMORI_ERROR_BIO_UNAVAILABLE   MAMORI_DBUS_ERROR_PREFIX "BioUnavailable"
#define MAMORI_ERROR_LENDING_SUSPECTED MAMORI_DBUS_ERROR_PREFIX "LendingSuspected"
#define MAMORI_ERROR_NOT_GROUP_MEMBER  MAMORI_DBUS_ERROR_PREFIX "NotGroupMember"
#define MAMORI_ERROR_PASSWORD_WRONG \
        MAMORI_DBUS_ERROR_PREFIX "PasswordWrong" /* "password-wrong delay=N": the login still waits */
#define MAMORI_ERROR_PASSWORD_UNSET     MAMORI_DBUS_ERROR_PREFIX "PasswordUnset"
#define MAMORI_ERROR_PASSWORD_TOO_SHORT MAMORI_DBUS_ERROR_PREFIX "PasswordTooShort" /* "… min=N" */
#define MAMORI_ERROR_VEIN_NO_MATCH      MAMORI_DBUS_ERROR_PREFIX "VeinNoMatch"
#define MAMORI_ERROR_VEIN_UNREADABLE    MAMORI_DBUS_ERROR_PREFIX "VeinUnreadable"
#define MAMORI_ERROR_CANCELLED \
        MAMORI_DBUS_ERROR_PREFIX "Cancelled" /* "cancelled[: why]": CancelLogin, a lock, agent stop */
#define MAMORI_ERROR_PIN_TOO_SHORT MAMORI_DBUS_ERROR_PREFIX "PinTooShort" /* ChangePin: "… min=N" */
#define MAMORI_ERROR_PIN_INVALID   MAMORI_DBUS_ERROR_PREFIX "PinInvalid" /* ChangePin: the card refused it */
