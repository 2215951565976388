#include "slot_share.h"

#include <stdint.h>

/* Slots numbered below `end` that go to replica self. */
static uint64_t dealt_below(uint64_t end, uint64_t replicas, uint64_t self)
{
    return end / replicas + (end % replicas > self ? 1 : 0);
}

int act_slot_share(int cc, int replicas, int self, size_t ordinal)
{
    if (cc <= 0 || replicas <= 1 || self < 0 || self >= replicas)
        return cc > 0 ? cc : 0;
    uint64_t first = (uint64_t)ordinal * (uint64_t)cc;
    return (int)(dealt_below(first + (uint64_t)cc, (uint64_t)replicas, (uint64_t)self) -
                 dealt_below(first, (uint64_t)replicas, (uint64_t)self));
}
