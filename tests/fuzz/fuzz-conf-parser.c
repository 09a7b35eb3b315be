/* Fuzz target: arbitrary bytes as agent.conf must give errors, never crashes or leaks. */
#include <stddef.h>
#include <stdint.h>

#include "mamori/agent-config.h"

static void ignore(void *ud, enum conf_level level, const char *file, unsigned line, const char *msg)
{
        (void)ud, (void)level, (void)file, (void)line, (void)msg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct agent_config c;

        if (agent_config_load_buffer((const char *)data, size, ignore, NULL, &c) >= 0)
                agent_config_free(&c);
        return 0;
}
