/* Token-level longest common subsequence for many (hypothesis, reference) pairs at once.
 *
 * Why C: scoring 2,000 Rouge-L pairs in Python spends most of its time building word lists
 * (one str object per token). Here every text is a slice of one UTF-32 buffer and a word is a
 * (pointer, length) run in it, compared exactly (hash, length, then code points). The words are
 * rouge-chinese's: str.split() of the text, or, where its sentence-split rules could change
 * that (see glued), the rules themselves re-enacted on a copy of the text.
 *
 * The LCS is the bit-parallel algorithm of Allison-Dix / Hyyro: one bit per reference token,
 * one multi-word add per hypothesis token. Loaded with ctypes (no Python C API, so one build
 * serves every Python version); see tokenlcs.py.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Exactly the code points for which Python's str.isspace() is true (a test checks every one). */
enum { TABLE_SIZE = 0x3001 };
static uint8_t space_table[TABLE_SIZE];
static int space_ready = 0;

static void init_space(void) {
    static const uint32_t spaces[] = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0,
                                      0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
    for (size_t i = 0; i < sizeof spaces / sizeof spaces[0]; i++) space_table[spaces[i]] = 1;
    for (uint32_t c = 0x2000; c <= 0x200A; c++) space_table[c] = 1;
    space_ready = 1;  /* idempotent: a second thread racing here writes the same bytes */
}

static inline int is_space(uint32_t c) { return c < TABLE_SIZE && space_table[c]; }

/* [。！？?], the first group of rouge-chinese's rules 1 and 4 */
static inline int is_end(uint32_t c) { return c == 0x3002 || c == 0xFF01 || c == 0xFF1F || c == 0x3F; }

/* Could one of rouge-chinese's four sentence-split rules put a newline between cp[i] and the
 * non-space character after it (splitting a token)? Earlier rules' newlines only break
 * adjacency, never create a match, so checking each rule on the original text is enough:
 *   1. [。！？?] then [^”’]         2. six dots then [^”’]
 *   3. two … then [^”’]             4. [。！？?][”’] then [^，。！？?]
 * A yes sends the text to the Python path; a no must be exact. */
static int glued(const uint32_t *cp, int64_t i, int64_t start, int64_t end) {
    if (i + 1 >= end || is_space(cp[i + 1])) return 0;
    uint32_t c = cp[i], next = cp[i + 1];
    int quote = next == 0x201D || next == 0x2019;
    if (is_end(c)) {
        if (!quote) return 1;                                    /* rule 1 */
        if (i + 2 >= end) return 0;
        uint32_t after = cp[i + 2];                              /* rule 4 */
        return !is_space(after) && !is_end(after) && after != 0xFF0C;
    }
    if (quote) return 0;
    if (c == 0x2E) {                                             /* rule 2 */
        if (i - start < 5) return 0;
        for (int64_t k = i - 5; k < i; k++)
            if (cp[k] != 0x2E) return 0;
        return 1;
    }
    return c == 0x2026 && i > start && cp[i - 1] == 0x2026;      /* rule 3 */
}

static uint64_t mix(uint64_t h) {
    h ^= h >> 33; h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

typedef struct {
    const uint32_t *p;  /* into the caller's buffer, or into the rewritten copy of a text */
    int64_t len;        /* 0 for rouge-chinese's empty word (a whitespace-only sentence) */
    uint64_t hash;
} token_t;

static int tok_equal(const token_t *a, const token_t *b) {
    return a->hash == b->hash && a->len == b->len && memcmp(a->p, b->p, (size_t)a->len * sizeof(uint32_t)) == 0;
}

typedef struct {
    token_t *v;
    int64_t n, cap;
} tokens_t;

static int push(tokens_t *t, const uint32_t *p, int64_t len) {
    if (t->n == t->cap) {
        int64_t cap = t->cap ? 2 * t->cap : 1024;
        token_t *v = (token_t *)realloc(t->v, (size_t)cap * sizeof(token_t));
        if (!v) return -1;
        t->v = v; t->cap = cap;
    }
    uint64_t h = 0xcbf29ce484222325ULL;  /* FNV-1a over code points, mixed once at the end */
    for (int64_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    t->v[t->n].p = p; t->v[t->n].len = len; t->v[t->n].hash = mix(h);
    t->n++;
    return 0;
}

/* Python's p[:len].split() */
static int push_split(tokens_t *t, const uint32_t *p, int64_t len) {
    for (int64_t i = 0; i < len;) {
        if (is_space(p[i])) { i++; continue; }
        int64_t s = i;
        while (i < len && !is_space(p[i])) i++;
        if (push(t, p + s, i - s)) return -1;
    }
    return 0;
}

/* Does the text need rouge-chinese's sentence split (else its words are exactly str.split())? */
static int needs_rules(const uint32_t *p, int64_t len) {
    for (int64_t i = 0; i < len; i++)
        if (p[i] == 0x0A || glued(p, i, 0, len)) return 1;
    return 0;
}

/* The four re.sub rules of rouge-chinese's sentence splitter, each a left-to-right scan with
 * re.sub's non-overlapping matches; each writes src[0..n) with inserted newlines to dst and
 * returns the new length. A newline only ever follows one (punctuation) character of the text
 * and no character gets two, so a text at most doubles. */
static int64_t rule_end(const uint32_t *src, int64_t n, uint32_t *dst) {  /* ([。！？?])([^”’]) */
    int64_t o = 0;
    for (int64_t i = 0; i < n;) {
        if (is_end(src[i]) && i + 1 < n && src[i + 1] != 0x201D && src[i + 1] != 0x2019) {
            dst[o++] = src[i]; dst[o++] = 0x0A; dst[o++] = src[i + 1]; i += 2;
        } else {
            dst[o++] = src[i++];
        }
    }
    return o;
}

static int64_t rule_run(const uint32_t *src, int64_t n, uint32_t *dst, uint32_t ch, int64_t run) {
    int64_t o = 0;                                    /* (\.{6})([^”’]) and (\…{2})([^”’]) */
    for (int64_t i = 0; i < n;) {
        int64_t k = 0;
        while (k < run && i + k < n && src[i + k] == ch) k++;
        if (k == run && i + run < n && src[i + run] != 0x201D && src[i + run] != 0x2019) {
            for (int64_t j = 0; j < run; j++) dst[o++] = ch;
            dst[o++] = 0x0A; dst[o++] = src[i + run]; i += run + 1;
        } else {
            dst[o++] = src[i++];
        }
    }
    return o;
}

static int64_t rule_end_quote(const uint32_t *src, int64_t n, uint32_t *dst) {
    int64_t o = 0;                                    /* ([。！？?][”’])([^，。！？?]) */
    for (int64_t i = 0; i < n;) {
        if (is_end(src[i]) && i + 2 < n && (src[i + 1] == 0x201D || src[i + 1] == 0x2019) &&
            !is_end(src[i + 2]) && src[i + 2] != 0xFF0C) {
            dst[o++] = src[i]; dst[o++] = src[i + 1]; dst[o++] = 0x0A; dst[o++] = src[i + 2]; i += 3;
        } else {
            dst[o++] = src[i++];
        }
    }
    return o;
}

/* rouge-chinese's words of one text: the rules, rstrip(), split('\n'), and per non-empty
 * sentence its split(), or one empty word when it is whitespace only. The rewritten text is
 * kept in `keep` (2 * len code points), which the tokens point into. */
static int push_sentences(tokens_t *t, const uint32_t *p, int64_t len, uint32_t *keep, uint32_t *tmp) {
    int64_t n = rule_end(p, len, tmp);
    n = rule_run(tmp, n, keep, 0x2E, 6);
    n = rule_run(keep, n, tmp, 0x2026, 2);
    n = rule_end_quote(tmp, n, keep);
    while (n > 0 && is_space(keep[n - 1])) n--;
    for (int64_t s = 0; s < n;) {
        int64_t e = s;
        while (e < n && keep[e] != 0x0A) e++;
        if (e > s) {
            int64_t k = s;
            while (k < e && is_space(keep[k])) k++;
            if (k == e ? push(t, keep + s, 0) : push_split(t, keep + s, e - s)) return -1;
        }
        s = e + 1;
    }
    return 0;
}

/* Splits every text into rouge-chinese's words; tok_off[t]..tok_off[t+1] are text t's. The
 * rewritten copies of texts that needed the sentence rules live in *arena (freed by the caller).
 * Returns the tokens, or NULL when out of memory. */
static token_t *tokenize(const uint32_t *cp, const int64_t *off, int64_t n_texts, int64_t *tok_off,
                         uint8_t *ruled, uint32_t **arena) {
    tokens_t t = {0};
    int64_t total = off[n_texts] - off[0], used = 0, longest = 0;
    uint32_t *tmp = NULL;
    if (!space_ready) init_space();
    for (int64_t i = 0; i < n_texts; i++)
        if (off[i + 1] - off[i] > longest) longest = off[i + 1] - off[i];
    for (int64_t i = 0; i < n_texts; i++) {
        const uint32_t *p = cp + off[i];
        int64_t len = off[i + 1] - off[i];
        tok_off[i] = t.n;
        ruled[i] = (uint8_t)needs_rules(p, len);
        if (!ruled[i]) {
            if (push_split(&t, p, len)) goto fail;
            continue;
        }
        if (!*arena) {  /* room for every text doubled: the arena never moves, tokens point into it */
            *arena = (uint32_t *)malloc((size_t)(2 * total + 1) * sizeof(uint32_t));
            tmp = (uint32_t *)malloc((size_t)(2 * longest + 1) * sizeof(uint32_t));
            if (!*arena || !tmp) goto fail;
        }
        if (push_sentences(&t, p, len, *arena + used, tmp)) goto fail;
        used += 2 * len;
    }
    tok_off[n_texts] = t.n;
    free(tmp);
    return t.v ? t.v : (token_t *)malloc(sizeof(token_t));
fail:
    free(tmp); free(t.v);
    return NULL;
}

/* Work space reused across pairs, grown when a pair needs more. */
typedef struct {
    int32_t *table;    /* open addressing: reference token index + 1, 0 = empty */
    int32_t *ids;      /* distinct-token id of each reference token */
    uint64_t *pm;      /* match masks: ids x words */
    uint64_t *v;
    int64_t table_cap, ids_cap, pm_cap, v_cap;
} work_t;

static int grow(void **p, int64_t *cap, int64_t need, size_t size) {
    if (need <= *cap) return 0;
    void *q = realloc(*p, (size_t)need * size);
    if (!q) return -1;
    *p = q; *cap = need;
    return 0;
}

static int64_t lcs_pair(const token_t *hyp, int64_t n, const token_t *ref,
                        int64_t m, work_t *w) {
    if (n == 0 || m == 0) return 0;
    int64_t words = (m + 63) / 64, cap = 16;
    while (cap < 2 * m) cap <<= 1;
    if (grow((void **)&w->table, &w->table_cap, cap, sizeof(int32_t)) ||
        grow((void **)&w->ids, &w->ids_cap, m, sizeof(int32_t)) ||
        grow((void **)&w->v, &w->v_cap, words, sizeof(uint64_t)))
        return -2;
    memset(w->table, 0, (size_t)cap * sizeof(int32_t));
    int64_t mask = cap - 1, distinct = 0;
    /* the id of each reference token ... */
    for (int64_t j = 0; j < m; j++) {
        int64_t slot = (int64_t)(ref[j].hash & (uint64_t)mask);
        while (w->table[slot] && !tok_equal(&ref[w->table[slot] - 1], &ref[j])) slot = (slot + 1) & mask;
        if (!w->table[slot]) {
            w->table[slot] = (int32_t)(j + 1);
            w->ids[j] = (int32_t)distinct++;
        } else {
            w->ids[j] = w->ids[w->table[slot] - 1];
        }
    }
    /* ... and of each distinct one its bit mask over positions (sized by the distinct words, so a
     * long reference of few words stays small) */
    if (grow((void **)&w->pm, &w->pm_cap, distinct * words, sizeof(uint64_t))) return -2;
    memset(w->pm, 0, (size_t)(distinct * words) * sizeof(uint64_t));
    for (int64_t j = 0; j < m; j++) w->pm[(int64_t)w->ids[j] * words + j / 64] |= 1ULL << (j % 64);
    for (int64_t k = 0; k < words; k++) w->v[k] = ~0ULL;
    for (int64_t i = 0; i < n; i++) {
        int64_t slot = (int64_t)(hyp[i].hash & (uint64_t)mask);
        while (w->table[slot] && !tok_equal(&ref[w->table[slot] - 1], &hyp[i])) slot = (slot + 1) & mask;
        if (!w->table[slot]) continue;  /* not in the reference: V stays as it is */
        const uint64_t *pm = w->pm + (int64_t)w->ids[w->table[slot] - 1] * words;
        uint64_t carry = 0;
        for (int64_t k = 0; k < words; k++) {
            uint64_t v = w->v[k], u = v & pm[k];
            uint64_t t = v + carry, c1 = t < carry, s = t + u, c2 = s < u;
            carry = c1 | c2;
            w->v[k] = s | (v & ~u);
        }
    }
    int64_t zeros = 0;
    for (int64_t k = 0; k < words; k++) {
        uint64_t live = (k == words - 1 && m % 64) ? ((1ULL << (m % 64)) - 1) : ~0ULL;
        zeros += __builtin_popcountll(~w->v[k] & live);
    }
    return zeros;
}

/* For pair k (texts hyp[k], ref[k]): lcs[k] = LCS length of rouge-chinese's word lists, nh[k]
 * and nr[k] = their lengths. Returns 0, or -1 when out of memory. */
int rc_pair_lcs(const uint32_t *cp, const int64_t *off, int64_t n_texts, const int64_t *hyp,
                const int64_t *ref, int64_t n_pairs, int64_t *lcs, int64_t *nh, int64_t *nr) {
    int64_t *tok_off = (int64_t *)malloc((size_t)(n_texts + 1) * sizeof(int64_t));
    uint8_t *ruled = (uint8_t *)malloc((size_t)(n_texts > 0 ? n_texts : 1));
    uint32_t *arena = NULL;
    token_t *toks = NULL;
    work_t w = {0};
    int rc = -1;
    if (!tok_off || !ruled || !(toks = tokenize(cp, off, n_texts, tok_off, ruled, &arena))) goto done;
    for (int64_t k = 0; k < n_pairs; k++) {
        int64_t h = hyp[k], r = ref[k];
        nh[k] = tok_off[h + 1] - tok_off[h];
        nr[k] = tok_off[r + 1] - tok_off[r];
        lcs[k] = lcs_pair(toks + tok_off[h], nh[k], toks + tok_off[r], nr[k], &w);
        if (lcs[k] < 0) goto done;
    }
    rc = 0;
done:
    free(tok_off); free(ruled); free(arena); free(toks);
    free(w.table); free(w.ids); free(w.pm); free(w.v);
    return rc;
}

/* Word counts of each text, and whether it took the sentence rules (for tests). */
int rc_token_counts(const uint32_t *cp, const int64_t *off, int64_t n_texts, int64_t *counts,
                    uint8_t *ruled) {
    int64_t *tok_off = (int64_t *)malloc((size_t)(n_texts + 1) * sizeof(int64_t));
    uint32_t *arena = NULL;
    token_t *toks = NULL;
    if (!tok_off || !(toks = tokenize(cp, off, n_texts, tok_off, ruled, &arena))) {
        free(tok_off); free(arena);
        return -1;
    }
    for (int64_t t = 0; t < n_texts; t++) counts[t] = tok_off[t + 1] - tok_off[t];
    free(tok_off); free(arena); free(toks);
    return 0;
}
