/* PC/SC transport for the card layer (SCardConnect/Transmit/Disconnect) and the one-call card id read. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <PCSC/winscard.h>
#include <PCSC/wintypes.h>

#include "mamori/card.h"
#include "mamori/macro.h"

struct CardPcsc {
        SCARDHANDLE handle;
        DWORD protocol;
        struct card_transport transport;
};

int card_pcsc_error_to_errno(LONG rv)
{
        switch (rv) {
        case SCARD_S_SUCCESS:
                return 0;
        case SCARD_W_REMOVED_CARD:
        case SCARD_E_NO_SMARTCARD:
                return CARD_E_REMOVED;
        case SCARD_E_NO_SERVICE:
        case SCARD_E_SERVICE_STOPPED:
        case SCARD_E_INVALID_HANDLE: /* the context died with pcscd: re-establish */
                return CARD_E_NO_SERVICE;
        case SCARD_E_UNKNOWN_READER:
        case SCARD_E_READER_UNAVAILABLE:
        case SCARD_E_NO_READERS_AVAILABLE:
                return CARD_E_NO_READER;
        case SCARD_W_RESET_CARD:
                return CARD_E_RESET;
        case SCARD_E_SHARING_VIOLATION:
                return CARD_E_BUSY;
        case SCARD_E_TIMEOUT:
                return CARD_E_TIMEOUT;
        case SCARD_W_UNRESPONSIVE_CARD:
        case SCARD_W_UNPOWERED_CARD:
        case SCARD_W_UNSUPPORTED_CARD:
        case SCARD_E_CARD_UNSUPPORTED:
        case SCARD_E_PROTO_MISMATCH:
        case SCARD_E_NOT_TRANSACTED:
                return CARD_E_UNRESPONSIVE;
        case SCARD_E_CANCELLED:
                return CARD_E_CANCELLED;
        case SCARD_E_NO_MEMORY:
                return -ENOMEM;
        case SCARD_E_INSUFFICIENT_BUFFER:
                return -ENOBUFS;
        case SCARD_E_INVALID_PARAMETER:
        case SCARD_E_INVALID_VALUE:
                return -EINVAL;
        default:
                return -EIO;
        }
}

static int pcsc_transmit(void *userdata, const uint8_t *capdu, size_t clen, uint8_t *rapdu, size_t *rlen)
{
        CardPcsc *p = userdata;
        const SCARD_IO_REQUEST *pci = p->protocol == SCARD_PROTOCOL_T0 ? SCARD_PCI_T0 : SCARD_PCI_T1;
        DWORD n = (DWORD)*rlen;
        LONG rv;

        rv = SCardTransmit(p->handle, pci, capdu, (DWORD)clen, NULL, rapdu, &n);
        if (rv != SCARD_S_SUCCESS)
                return card_pcsc_error_to_errno(rv);
        if (n > *rlen)
                return -ENOBUFS;
        if (n < 2) {
                /* No status word: the card went away mid-command (vpcd, some readers report that
                 * as success with an empty answer). Say removed if PC/SC already knows, else mute. */
                DWORD state = 0, proto = 0, atr_len = MAX_ATR_SIZE, name_len = 0;
                uint8_t atr[MAX_ATR_SIZE];
                rv = SCardStatus(p->handle, NULL, &name_len, &state, &proto, atr, &atr_len);
                if (rv == SCARD_W_REMOVED_CARD || (rv == SCARD_S_SUCCESS && !(state & SCARD_PRESENT)))
                        return CARD_E_REMOVED;
                return CARD_E_UNRESPONSIVE;
        }
        *rlen = n;
        return 0;
}

int card_pcsc_connect(SCARDCONTEXT ctx, const char *reader, CardPcsc **ret)
{
        _cleanup_free_ CardPcsc *p = NULL;
        LONG rv;

        if (!reader || !ret)
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        rv = SCardConnect(ctx, reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &p->handle,
                          &p->protocol);
        if (rv != SCARD_S_SUCCESS)
                return card_pcsc_error_to_errno(rv);
        p->transport.transmit = pcsc_transmit;
        p->transport.userdata = p;
        *ret = TAKE_PTR(p);
        return 0;
}

static CardPcsc *card_pcsc_disconnect(CardPcsc *p, DWORD disposition)
{
        if (!p)
                return NULL;
        (void)SCardDisconnect(p->handle, disposition);
        free(p);
        return NULL;
}

CardPcsc *card_pcsc_free(CardPcsc *p)
{
        return card_pcsc_disconnect(p, SCARD_LEAVE_CARD);
}

CardPcsc *card_pcsc_free_reset(CardPcsc *p)
{
        return card_pcsc_disconnect(p, SCARD_RESET_CARD);
}

const struct card_transport *card_pcsc_transport(CardPcsc *p)
{
        return &p->transport;
}

int card_pcsc_begin(CardPcsc *p)
{
        return card_pcsc_error_to_errno(SCardBeginTransaction(p->handle));
}

int card_pcsc_end(CardPcsc *p)
{
        return card_pcsc_error_to_errno(SCardEndTransaction(p->handle, SCARD_LEAVE_CARD));
}

int card_pcsc_read_card_id(SCARDCONTEXT ctx, const char *reader, char ret_id[CARD_ID_LEN + 1],
                           uint8_t **ret_der, size_t *ret_der_len)
{
        return card_pcsc_read_card(ctx, reader, ret_id, ret_der, ret_der_len, NULL);
}

int card_pcsc_read_card(SCARDCONTEXT ctx, const char *reader, char ret_id[CARD_ID_LEN + 1],
                        uint8_t **ret_der, size_t *ret_der_len, int *ret_tries)
{
        _cleanup_(card_pcsc_freep) CardPcsc *p = NULL;
        _cleanup_(card_freep) Card *c = NULL;
        _cleanup_free_ uint8_t *der = NULL;
        char id[CARD_ID_LEN + 1];
        size_t der_len = 0;
        int r;

        if (!ret_id)
                return -EINVAL;
        r = card_pcsc_connect(ctx, reader, &p);
        if (r < 0)
                return r;
        r = card_new(card_pcsc_transport(p), NULL, &c);
        if (r < 0)
                return r;
        r = card_select(c);
        if (r < 0)
                return r;
        r = card_read_certificate(c, &der, &der_len);
        if (r < 0)
                return r;
        r = card_id_from_cert(der, der_len, id);
        if (r < 0)
                return r;
        if (ret_tries) {
                /* One more exchange, off the login path: the PIN tries the card reports. */
                unsigned tries;
                int t = card_pin_tries(c, &tries);
                *ret_tries = t == 0 ? (int)tries : t == CARD_E_PIN_BLOCKED ? 0 : -1;
        }

        memcpy(ret_id, id, sizeof(id));
        if (ret_der)
                *ret_der = TAKE_PTR(der);
        if (ret_der_len)
                *ret_der_len = der_len;
        return 0;
}
