/* scoreboard: shared anonymous mapping; see scoreboard.h. */
#include "core/scoreboard.h"

#include <stddef.h>
#include <sys/mman.h>

static size_t scoreboard_size(int n)
{
    return sizeof(gp_scoreboard) + (size_t)n * sizeof(gp_slot);
}

gp_scoreboard *gp_scoreboard_create(int num_slots)
{
    gp_scoreboard *sb = mmap(NULL, scoreboard_size(num_slots), PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sb == MAP_FAILED) return NULL;
    sb->num_slots = num_slots; /* the mapping starts zeroed: every slot GP_WS_EMPTY */
    return sb;
}

void gp_scoreboard_destroy(gp_scoreboard *sb)
{
    if (sb) munmap(sb, scoreboard_size(sb->num_slots));
}
