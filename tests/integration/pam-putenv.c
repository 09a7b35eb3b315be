/* pam_test_putenv.so: puts each NAME=value argument into the PAM environment (as a display manager
 * puts the greeter's language there before pam_authenticate), for test_pam's language tests. */
#include <security/pam_modules.h>

static int put_all(pam_handle_t *pamh, int argc, const char **argv)
{
        for (int i = 0; i < argc; i++)
                if (pam_putenv(pamh, argv[i]) != PAM_SUCCESS)
                        return PAM_SERVICE_ERR;
        return PAM_IGNORE;
}

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
        return put_all(pamh, argc, argv);
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
        return PAM_IGNORE;
}

PAM_EXTERN int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
        return put_all(pamh, argc, argv);
}

PAM_EXTERN int pam_sm_chauthtok(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
        return put_all(pamh, argc, argv);
}
