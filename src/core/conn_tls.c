/* conn_tls: gp_conn_tls until the stream layer (branch stream) carries TLS
 * connections: every gp_conn is plain. Removed when the TLS transport is
 * plugged into the stream. */
#include "core/conn.h"

struct gp_tls *gp_conn_tls(gp_conn *c)
{
    (void)c;
    return NULL;
}
