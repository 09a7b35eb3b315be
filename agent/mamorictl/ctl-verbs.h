/* mamorictl verb table entries: each verb gets argc/argv starting at its own name, returns the exit code. */
#pragma once

struct ctl_verb {
        const char *name;
        const char *summary;
        int (*run)(int argc, char **argv);
};

int ctl_help(int argc, char **argv);
int ctl_log(int argc, char **argv);
int ctl_log_quarantine(int argc, char **argv); /* mamorictl log quarantine */
/* After a broken `log verify` of dir: what its quarantine.json says, if it has one. */
struct log_verify_result;
void ctl_log_quarantine_note(const char *dir, const struct log_verify_result *res);
int ctl_identity(int argc, char **argv);
int ctl_enroll_request(int argc, char **argv);
int ctl_enroll_install(int argc, char **argv);
int ctl_status(int argc, char **argv);
int ctl_lock(int argc, char **argv);
int ctl_passwd(int argc, char **argv);
int ctl_auth_test(int argc, char **argv);
int ctl_enroll(int argc, char **argv);
int ctl_prints(int argc, char **argv);
int ctl_password(int argc, char **argv); /* mamorictl password reset */
