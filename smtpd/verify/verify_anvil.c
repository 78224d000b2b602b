/*
 * verify_anvil - per-client connection counts (see verify_anvil.h)
 *
 * A chained hash of client addresses. An address stays while it has a
 * session or its rate window is still running; the sweep frees the
 * rest. Each owner (one smtpd connection) lists the entries it holds a
 * session on, once per session, so that a vanished smtpd gives back
 * exactly what it took and nothing of another smtpd's.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "verify_anvil.h"
#include "util/msg.h"
#include "util/str.h"
#include "util/xmalloc.h"

#define ANVIL_ADDR_MAX 64               /* an IPv6 text form is at most 45 */

typedef struct anvil_entry {
    char addr[ANVIL_ADDR_MAX];
    uint64_t count;                     /* open sessions, every owner */
    uint64_t rate;                      /* connections in the window */
    int64_t window_start_ms;
    struct anvil_entry *next;           /* hash chain */
} anvil_entry_t;

struct verify_anvil {
    anvil_entry_t **slots;
    size_t nslots;
    size_t naddrs;
    size_t max_addrs;
    int64_t unit_ms;
    bool full_warned;
};

struct verify_anvil_owner {
    anvil_entry_t **held;               /* one element per open session */
    size_t n, cap;
};

verify_anvil_t *verify_anvil_new(int64_t unit_ms, size_t max_addrs)
{
    verify_anvil_t *a = xcalloc(1, sizeof(*a));

    a->nslots = 4099;
    a->slots = xcalloc(a->nslots, sizeof(*a->slots));
    a->max_addrs = max_addrs;
    a->unit_ms = unit_ms > 0 ? unit_ms : 60000;
    return a;
}

void verify_anvil_free(verify_anvil_t **ap)
{
    verify_anvil_t *a = *ap;

    if (a == NULL)
        return;
    for (size_t i = 0; i < a->nslots; i++) {
        for (anvil_entry_t *e = a->slots[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(a->slots);
    xfreep(ap);
}

/* anvil_find - the entry for addr; made when make is set and there is room */
static anvil_entry_t *anvil_find(verify_anvil_t *a, const char *addr, bool make)
{
    size_t slot = (size_t)(str_hash(addr) % a->nslots);
    anvil_entry_t *e;

    for (e = a->slots[slot]; e; e = e->next)
        if (strcmp(e->addr, addr) == 0)
            return e;
    if (!make || strlen(addr) >= ANVIL_ADDR_MAX)
        return NULL;
    if (a->naddrs >= a->max_addrs) {
        if (!a->full_warned)
            msg_warn("anvil: %zu client addresses tracked: not counting more until some expire",
                     a->naddrs);
        a->full_warned = true;
        return NULL;
    }
    e = xcalloc(1, sizeof(*e));
    strcpy(e->addr, addr);
    e->next = a->slots[slot];
    a->slots[slot] = e;
    a->naddrs++;
    return e;
}

void verify_anvil_connect(verify_anvil_t *a, verify_anvil_owner_t **owner, const char *addr,
                          int64_t now_ms, uint64_t *count_r, uint64_t *rate_r)
{
    anvil_entry_t *e = anvil_find(a, addr, true);
    verify_anvil_owner_t *o;

    *count_r = *rate_r = 0;
    if (e == NULL)
        return;
    if (e->rate == 0 || now_ms - e->window_start_ms >= a->unit_ms) {
        e->window_start_ms = now_ms;
        e->rate = 0;
    }
    e->rate++;
    e->count++;
    if ((o = *owner) == NULL)
        o = *owner = xcalloc(1, sizeof(*o));
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 16;
        o->held = xreallocarray(o->held, o->cap, sizeof(*o->held));
    }
    o->held[o->n++] = e;
    *count_r = e->count;
    *rate_r = e->rate;
}

void verify_anvil_disconnect(verify_anvil_t *a, verify_anvil_owner_t *owner, const char *addr)
{
    anvil_entry_t *e = anvil_find(a, addr, false);

    if (e == NULL || owner == NULL)
        return;
    for (size_t i = owner->n; i-- > 0;) {
        if (owner->held[i] == e) {
            owner->held[i] = owner->held[--owner->n];
            e->count--;
            return;
        }
    }
}

void verify_anvil_owner_free(verify_anvil_t *a, verify_anvil_owner_t **owner)
{
    verify_anvil_owner_t *o = *owner;

    if (o == NULL)
        return;
    for (size_t i = 0; i < o->n; i++)
        o->held[i]->count--;
    free(o->held);
    xfreep(owner);
}

size_t verify_anvil_sweep(verify_anvil_t *a, int64_t now_ms)
{
    for (size_t i = 0; i < a->nslots; i++) {
        anvil_entry_t **pp = &a->slots[i];

        while (*pp) {
            anvil_entry_t *e = *pp;

            if (e->count == 0 && now_ms - e->window_start_ms >= a->unit_ms) {
                *pp = e->next;
                free(e);
                a->naddrs--;
            } else {
                pp = &e->next;
            }
        }
    }
    if (a->naddrs < a->max_addrs)
        a->full_warned = false;
    return a->naddrs;
}
