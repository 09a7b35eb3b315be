/* MESSAGE_ID= of the journal messages an administrator acts on, explained in systemd/mamori.catalog. */
#pragma once

#include <stddef.h>
#include <string.h>

/* Each id has an entry in systemd/mamori.catalog (journalctl -x shows it); test_docs.py checks
 * that the catalogue parses, holds exactly these ids, and that the code sends each of them. */
#define MAMORI_MESSAGE_LOCK             "ffda94978e9744e082d0f03dc739a50e"
#define MAMORI_MESSAGE_LOGIN_REFUSED    "d71f8473a6664174925eed3171d7591e"
#define MAMORI_MESSAGE_EMERGENCY        "3bd4d7b442404d54aaba8b87f38c46d1"
#define MAMORI_MESSAGE_LOG_UNWRITABLE   "c33d445290aa4275b3a78e63d2ccf796"
#define MAMORI_MESSAGE_POLICY_STALE     "b72b62d480394e6581e63b0fdc883a1d"
#define MAMORI_MESSAGE_POLICY_REJECTED  "631aea3683954653a7e6911788ea36f7"
#define MAMORI_MESSAGE_TERMINAL_RETIRED "c5a7574914fb41ad8ce9c5502250cd43"

/* The MESSAGE_ID an event (DESIGN.md §6 name) carries in the journal, or NULL. */
static inline const char *mamori_event_message_id(const char *event)
{
        static const struct {
                const char *event, *id;
        } table[] = {
                {"lock", MAMORI_MESSAGE_LOCK},
                {"auth.fail", MAMORI_MESSAGE_LOGIN_REFUSED},
                {"emergency.lock", MAMORI_MESSAGE_EMERGENCY},
                {"policy.stale", MAMORI_MESSAGE_POLICY_STALE},
                {"policy.reject", MAMORI_MESSAGE_POLICY_REJECTED},
        };

        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
                if (strcmp(table[i].event, event) == 0)
                        return table[i].id;
        return NULL;
}
