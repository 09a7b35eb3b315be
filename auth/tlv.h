/* Bounded BER-TLV reader for card responses (PIV: 1-3 byte tags, lengths up to 82 xx xx). */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* A cursor over one buffer. Never reads outside [p, p + left). Does not own the bytes. */
struct tlv_reader {
        const uint8_t *p;
        size_t left;
};

struct tlv {
        uint32_t tag; /* tag bytes as a big-endian number: 0x53, 0x5FC105, 0x7C ... */
        const uint8_t *value;
        size_t length;
};

void tlv_reader_init(struct tlv_reader *r, const uint8_t *buf, size_t len);

/* Reads the next element. Returns 1 and fills *ret, 0 at the end of the buffer, -EBADMSG on a
 * truncated or unsupported encoding (tags longer than 3 bytes, indefinite length, length forms
 * beyond 82, a value running past the buffer). After an error the reader is left at the end. */
int tlv_next(struct tlv_reader *r, struct tlv *ret);

/* Reads the children of a constructed element. */
static inline void tlv_reader_enter(struct tlv_reader *r, const struct tlv *parent)
{
        tlv_reader_init(r, parent->value, parent->length);
}

/* First element with this tag among the siblings of buf. 0 and *ret on success, -ENOENT when
 * absent, -EBADMSG if the siblings before it (or it) are malformed. */
int tlv_find(const uint8_t *buf, size_t len, uint32_t tag, struct tlv *ret);

/* Writes a tag and a length header (length encoded minimally: short, 81 or 82). Returns the
 * number of bytes written, or -ENOBUFS if cap is too small, -ERANGE if tag or length don't fit. */
int tlv_put_header(uint8_t *buf, size_t cap, uint32_t tag, size_t length);
