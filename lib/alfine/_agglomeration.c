/* alfine._agglomeration: the loops of mean-affinity agglomeration that numpy cannot vectorise (see
 * alfine/postprocess/agglomeration.py and merging.py, which call them and keep numpy and Python versions that give the
 * same results where this module was not built):
 *
 * - grow: fragments grown from seeds in rounds along edges above a threshold (agglomeration's _grow);
 * - depths: the rounds of new seeds, as depths in a tree (agglomeration's _depths);
 * - merge_by_mean_affinity: greedy merging of a region adjacency graph (merging.py).
 *
 * Merging takes the same steps as the Python loop, so the same merges in the same order: a heap of (-mean, u, v)
 * popped smallest first (ties by u, then v), an entry skipped where its edge is gone or its mean changed, the segment
 * with fewer live edges merged into the other, whose edges to each neighbour add the sums and counts of the merged
 * one's. Edges live in one hash table keyed by their two nodes (smaller first); each node keeps a list of the
 * neighbours it ever had (entries whose edge is gone are skipped) and its number of live edges. Python's lock is
 * released while they run. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_buffers.h"

typedef struct {
    double key;  /* -mean */
    uint64_t u, v;
} Entry;

typedef struct {
    Entry *items;
    size_t size, capacity;
} Heap;

static int
before(const Entry *a, const Entry *b)
{
    if (a->key != b->key) {
        return a->key < b->key;
    }
    if (a->u != b->u) {
        return a->u < b->u;
    }
    return a->v < b->v;
}

/* ``items`` (size items of item_size bytes, room for *capacity) with room for one more: the same buffer or a moved
 * one (the first room holds ``first`` items, then it doubles); NULL: no memory (``items`` unchanged). */
static void *
make_room(void *items, size_t size, size_t *capacity, size_t item_size, size_t first)
{
    if (size < *capacity) {
        return items;
    }
    size_t larger = *capacity ? 2 * *capacity : first;
    void *moved = realloc(items, larger * item_size);
    if (moved != NULL) {
        *capacity = larger;
    }
    return moved;
}

static int
heap_push(Heap *heap, double key, uint64_t u, uint64_t v)
{
    Entry *items = make_room(heap->items, heap->size, &heap->capacity, sizeof(Entry), 1024);
    if (items == NULL) {
        return -1;
    }
    heap->items = items;
    size_t i = heap->size++;
    Entry entry = {key, u, v};
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!before(&entry, &heap->items[up])) {
            break;
        }
        heap->items[i] = heap->items[up];
        i = up;
    }
    heap->items[i] = entry;
    return 0;
}

static Entry
heap_pop(Heap *heap)
{
    Entry top = heap->items[0], last = heap->items[--heap->size];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= heap->size) {
            break;
        }
        if (child + 1 < heap->size && before(&heap->items[child + 1], &heap->items[child])) {
            child++;
        }
        if (!before(&heap->items[child], &last)) {
            break;
        }
        heap->items[i] = heap->items[child];
        i = child;
    }
    if (heap->size) {
        heap->items[i] = last;
    }
    return top;
}

/* The edges: open addressing, linear probing; a slot is empty (state 0), live (1) or gone (2). */
typedef struct {
    uint64_t a, b;  /* a < b */
    double sum;
    int64_t count;
    int state;
} Slot;

typedef struct {
    Slot *slots;
    size_t capacity, live, used;  /* used: live and gone slots */
} Edges;

static size_t
slot_of(uint64_t a, uint64_t b, size_t capacity)
{
    uint64_t h = a * 0x9E3779B97F4A7C15ULL ^ (b + 0x632BE59BD9B4E019ULL);
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 29;
    return (size_t)h & (capacity - 1);
}

/* The slot of edge (a, b): where it is live, else the empty slot that ends its probe (NULL: none, cannot happen
 * while used < capacity). */
static Slot *
edges_find(const Edges *edges, uint64_t a, uint64_t b)
{
    size_t i = slot_of(a, b, edges->capacity);
    for (size_t probes = 0; probes < edges->capacity; probes++, i = (i + 1) & (edges->capacity - 1)) {
        Slot *slot = &edges->slots[i];
        if (slot->state == 0 || (slot->state == 1 && slot->a == a && slot->b == b)) {
            return slot;
        }
    }
    return NULL;
}

static int
edges_init(Edges *edges, size_t expected)
{
    size_t capacity = 1024;
    while (capacity < 2 * expected + 2) {
        capacity *= 2;
    }
    edges->slots = calloc(capacity, sizeof(Slot));
    edges->capacity = capacity;
    edges->live = edges->used = 0;
    return edges->slots == NULL ? -1 : 0;
}

/* Rebuilds the table without its gone slots (larger where more than a quarter is live); -1: no memory. */
static int
edges_rebuild(Edges *edges)
{
    Edges fresh;
    if (edges_init(&fresh, 2 * edges->live) < 0) {
        return -1;
    }
    for (size_t i = 0; i < edges->capacity; i++) {
        const Slot *slot = &edges->slots[i];
        if (slot->state == 1) {
            *edges_find(&fresh, slot->a, slot->b) = *slot;
            fresh.live++;
            fresh.used++;
        }
    }
    free(edges->slots);
    *edges = fresh;
    return 0;
}

/* The live edge (a, b), created with sum 0 and count 0 where there is none (*created then 1); NULL: no memory. */
static Slot *
edges_get(Edges *edges, uint64_t a, uint64_t b, int *created)
{
    Slot *slot = edges_find(edges, a, b);
    *created = slot->state == 0;
    if (*created) {
        if (4 * (edges->used + 1) > 3 * edges->capacity) {
            if (edges_rebuild(edges) < 0) {
                return NULL;
            }
            slot = edges_find(edges, a, b);
        }
        slot->a = a;
        slot->b = b;
        slot->sum = 0.0;
        slot->count = 0;
        slot->state = 1;
        edges->live++;
        edges->used++;
    }
    return slot;
}

static void
edges_remove(Edges *edges, Slot *slot)
{
    slot->state = 2;
    edges->live--;
}

typedef struct {
    uint64_t *items;
    size_t size, capacity;
} List;

static int
list_append(List *list, uint64_t value)
{
    uint64_t *items = make_room(list->items, list->size, &list->capacity, sizeof(uint64_t), 4);
    if (items == NULL) {
        return -1;
    }
    list->items = items;
    list->items[list->size++] = value;
    return 0;
}

typedef struct {
    Heap heap;
    Edges edges;
    List *neighbours;
    int64_t *degree;
} Graph;

static void
graph_free(Graph *graph, uint64_t nodes)
{
    free(graph->heap.items);
    free(graph->edges.slots);
    if (graph->neighbours != NULL) {
        for (uint64_t k = 0; k <= nodes; k++) {
            free(graph->neighbours[k].items);
        }
    }
    free(graph->neighbours);
    free(graph->degree);
}

/* Adds (sum, count) to edge (u, w) (made where missing) and pushes its new mean; -1: no memory. */
static int
add_to_edge(Graph *graph, uint64_t u, uint64_t w, double sum, int64_t count, int overwrite, uint64_t first,
            uint64_t second)
{
    uint64_t a = u < w ? u : w, b = u < w ? w : u;
    int created;
    Slot *slot = edges_get(&graph->edges, a, b, &created);
    if (slot == NULL) {
        return -1;
    }
    if (created) {
        if (list_append(&graph->neighbours[u], w) < 0 || list_append(&graph->neighbours[w], u) < 0) {
            return -1;
        }
        graph->degree[u]++;
        graph->degree[w]++;
    }
    if (overwrite) {
        slot->sum = sum;
        slot->count = count;
    }
    else {
        slot->sum += sum;
        slot->count += count;
    }
    return heap_push(&graph->heap, -slot->sum / (double)slot->count, first, second);
}

/* The merging loop; -1: no memory, -2: a pair names a node above nodes, -3: a pair joins a node to itself (*bad:
 * that node). */
static int
merge(uint64_t nodes, const uint64_t *pairs, const double *sums, const int64_t *counts, size_t edges,
      double threshold, int64_t *size, int64_t small, uint64_t *parent, uint64_t *bad)
{
    Graph graph = {{NULL, 0, 0}, {NULL, 0, 0, 0}, NULL, NULL};
    int failed = -1;
    graph.neighbours = calloc(nodes + 1, sizeof(List));
    graph.degree = calloc(nodes + 1, sizeof(int64_t));
    if (graph.neighbours == NULL || graph.degree == NULL || edges_init(&graph.edges, edges) < 0) {
        goto done;
    }
    for (size_t e = 0; e < edges; e++) {
        uint64_t u = pairs[2 * e], v = pairs[2 * e + 1];
        if (u > nodes || v > nodes || u == v) {
            *bad = u > nodes ? u : v;
            failed = u == v ? -3 : -2;
            goto done;
        }
        /* as the Python loop: a pair given twice keeps its last sum and count */
        if (add_to_edge(&graph, u, v, sums[e], counts[e], 1, u, v) < 0) {
            goto done;
        }
    }
    for (uint64_t k = 0; k <= nodes; k++) {
        parent[k] = k;
    }
    while (graph.heap.size && -graph.heap.items[0].key > threshold) {
        Entry top = heap_pop(&graph.heap);
        uint64_t u = top.u, v = top.v;
        Slot *edge = edges_find(&graph.edges, u < v ? u : v, u < v ? v : u);
        if (edge->state != 1 || edge->sum / (double)edge->count != -top.key) {
            continue;  /* an edge that a merge removed or changed */
        }
        if (size != NULL) {
            if ((size[u] < size[v] ? size[u] : size[v]) >= small) {
                continue;  /* sizes only grow: this pair never merges */
            }
            size[u] = size[v] = size[u] + size[v];
        }
        if (graph.degree[u] < graph.degree[v]) {
            uint64_t swap = u;
            u = v;
            v = swap;
        }
        edges_remove(&graph.edges, edge);
        graph.degree[u]--;
        graph.degree[v]--;
        List *around = &graph.neighbours[v];
        for (size_t i = 0; i < around->size; i++) {
            uint64_t w = around->items[i];
            if (w == u) {
                continue;
            }
            Slot *gone = edges_find(&graph.edges, v < w ? v : w, v < w ? w : v);
            if (gone->state != 1) {
                continue;  /* an edge that an earlier merge removed */
            }
            double sum = gone->sum;
            int64_t count = gone->count;
            edges_remove(&graph.edges, gone);
            graph.degree[w]--;
            graph.degree[v]--;
            if (add_to_edge(&graph, u, w, sum, count, 0, u < w ? u : w, u < w ? w : u) < 0) {
                goto done;
            }
        }
        free(around->items);
        around->items = NULL;
        around->size = around->capacity = 0;
        parent[v] = u;
    }
    failed = 0;
done:
    graph_free(&graph, nodes);
    return failed;
}

PyDoc_STRVAR(merge_by_mean_affinity_doc,
"merge_by_mean_affinity(nodes, pairs, sums, counts, threshold, sizes, small, parent)\n\n"
"Greedy mean-affinity merging (alfine.postprocess.merging): pairs uint64 [E, 2], sums float64 [E], counts\n"
"int64 [E], sizes int64 [nodes + 1] or None (changed: merged segments' sizes), parent uint64 [nodes + 1]\n"
"(written: each node's parent; a merged node points to the one it was merged into).");

static PyObject *
merge_by_mean_affinity(PyObject *self, PyObject *args)
{
    (void)self;
    unsigned long long nodes;
    long long small;
    double threshold;
    PyObject *pairs_obj, *sums_obj, *counts_obj, *sizes_obj, *parent_obj;
    if (!PyArg_ParseTuple(args, "KOOOdOLO", &nodes, &pairs_obj, &sums_obj, &counts_obj, &threshold, &sizes_obj,
                          &small, &parent_obj)) {
        return NULL;
    }
    PyObject *result = NULL;  /* None once merged; NULL with an error set */
    Py_buffer views[5];
    PyObject *objects[5] = {pairs_obj, sums_obj, counts_obj, parent_obj, sizes_obj};
    const char *names[5] = {"pairs", "sums", "counts", "parent", "sizes"};
    int writable[5] = {0, 0, 0, 1, 1};
    int held = 0;
    for (; held < (sizes_obj == Py_None ? 4 : 5); held++) {
        if (get_buffer(objects[held], &views[held], 8, writable[held], names[held]) < 0) {
            goto release;
        }
    }
    size_t edges = (size_t)(views[1].len / 8);
    if ((size_t)(views[0].len / 8) != 2 * edges || (size_t)(views[2].len / 8) != edges
            || (size_t)(views[3].len / 8) != nodes + 1 || (held == 5 && (size_t)(views[4].len / 8) != nodes + 1)) {
        PyErr_SetString(PyExc_ValueError, "pairs, sums and counts must hold one entry an edge, parent (and sizes) "
                        "one a node");
        goto release;
    }
    uint64_t bad = 0;
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = merge((uint64_t)nodes, views[0].buf, views[1].buf, views[2].buf, edges, threshold,
                   held == 5 ? views[4].buf : NULL, (int64_t)small, views[3].buf, &bad);
    Py_END_ALLOW_THREADS
    if (failed == -1) {
        PyErr_NoMemory();
    }
    else if (failed == -2) {
        PyErr_Format(PyExc_ValueError, "node %llu in pairs, above nodes %llu", (unsigned long long)bad, nodes);
    }
    else if (failed == -3) {
        PyErr_Format(PyExc_ValueError, "a pair joins node %llu to itself", (unsigned long long)bad);
    }
    else {
        result = Py_NewRef(Py_None);
    }
release:
    for (int i = 0; i < held; i++) {
        PyBuffer_Release(&views[i]);
    }
    return result;
}

/* -- growing fragments -------------------------------------------------------------------------------------- */

typedef struct {
    int64_t target, source;
    double weight;
    int rank;  /* 2 * channel + (0: the source lies at -offset of the target, 1: at +offset) */
} Claim;

/* labels[0..n) grown from the voxels frontier[0..count) along edges above threshold, in rounds (see _grow); the
 * affinities are channels x n values of type T. -1: no memory. */
#define GROW(NAME, T)                                                                                                \
static int                                                                                                           \
NAME(uint64_t *labels, int64_t n, const int64_t *shape, int ndim, const T *affinities, int channels,                \
     const int64_t *axes, const int64_t *deltas, double threshold, const int64_t *seeds, int64_t count)              \
{                                                                                                                    \
    int64_t steps[32];                                                                                               \
    steps[ndim - 1] = 1;                                                                                             \
    for (int a = ndim - 2; a >= 0; a--) {                                                                            \
        steps[a] = steps[a + 1] * shape[a + 1];                                                                      \
    }                                                                                                                \
    int failed = -1;                                                                                                 \
    int32_t *claimed = malloc((size_t)n * sizeof(int32_t));  /* each voxel's claim this round (-1: none) */       \
    int64_t *frontier = malloc((size_t)(count ? count : 1) * sizeof(int64_t));                                       \
    Claim *claims = NULL;                                                                                            \
    size_t capacity = 0;                                                                                             \
    if (claimed == NULL || frontier == NULL) {                                                                       \
        goto done;                                                                                                   \
    }                                                                                                                \
    for (int64_t i = 0; i < n; i++) {                                                                                \
        claimed[i] = -1;                                                                                             \
    }                                                                                                                \
    memcpy(frontier, seeds, (size_t)count * sizeof(int64_t));                                                        \
    while (count) {                                                                                                  \
        size_t made = 0;                                                                                             \
        for (int64_t k = 0; k < count; k++) {                                                                        \
            const int64_t f = frontier[k];                                                                           \
            for (int c = 0; c < channels; c++) {                                                                     \
                const int64_t step = steps[axes[c]], d = deltas[c], position = f / step % shape[axes[c]];            \
                const T *edge = affinities + (size_t)c * (size_t)n;                                                  \
                for (int side = 0; side < 2; side++) {                                                               \
                    const int64_t to = side ? position - d : position + d;                                           \
                    if (to < 0 || to >= shape[axes[c]]) {                                                            \
                        continue;                                                                                    \
                    }                                                                                                \
                    const int64_t t = side ? f - d * step : f + d * step;                                            \
                    const double w = (double)edge[side ? t : f];  /* the edge of v and v + offset lies at v */       \
                    if (!(w > threshold) || labels[t] != 0) {                                                        \
                        continue;                                                                                    \
                    }                                                                                                \
                    const int rank = 2 * c + side;                                                                   \
                    if (claimed[t] < 0) {                                                                            \
                        Claim *room = make_room(claims, made, &capacity, sizeof(Claim), 1024);                       \
                        if (room == NULL) {                                                                          \
                            goto done;                                                                               \
                        }                                                                                            \
                        claims = room;                                                                               \
                        claimed[t] = (int32_t)made;                                                                  \
                        claims[made++] = (Claim){t, f, w, rank};                                                     \
                    }                                                                                                \
                    else {                                                                                           \
                        Claim *best = &claims[claimed[t]];                                                           \
                        if (w > best->weight || (w == best->weight && rank < best->rank)) {                          \
                            best->source = f;                                                                        \
                            best->weight = w;                                                                        \
                            best->rank = rank;                                                                       \
                        }                                                                                            \
                    }                                                                                                \
                }                                                                                                    \
            }                                                                                                        \
        }                                                                                                            \
        if ((size_t)count < made) {                                                                                  \
            int64_t *larger = realloc(frontier, made * sizeof(int64_t));                                             \
            if (larger == NULL) {                                                                                    \
                goto done;                                                                                           \
            }                                                                                                        \
            frontier = larger;                                                                                       \
        }                                                                                                            \
        for (size_t m = 0; m < made; m++) {  /* labels change only once the round has looked at them all */         \
            labels[claims[m].target] = labels[claims[m].source];                                                     \
            claimed[claims[m].target] = -1;                                                                          \
            frontier[m] = claims[m].target;                                                                          \
        }                                                                                                            \
        count = (int64_t)made;                                                                                       \
    }                                                                                                                \
    failed = 0;                                                                                                      \
done:                                                                                                                \
    free(claimed);                                                                                                   \
    free(frontier);                                                                                                  \
    free(claims);                                                                                                    \
    return failed;                                                                                                   \
}

GROW(grow_float, float)
GROW(grow_double, double)

PyDoc_STRVAR(grow_doc,
"grow(labels, shape, affinities, axes, deltas, threshold, seeds)\n\n"
"labels (uint64, C-contiguous, changed in place) grown from the flat indices seeds (int64) in rounds along edges\n"
"whose affinity is above threshold (a float64; affinities float32 or float64 [C, *shape], channel c the edge of\n"
"v and v + deltas[c] along axis axes[c], int64), as alfine.postprocess.agglomeration._grow.");

static PyObject *
grow(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *labels_obj, *shape_obj, *affinities_obj, *axes_obj, *deltas_obj, *seeds_obj;
    double threshold;
    if (!PyArg_ParseTuple(args, "OOOOOdO", &labels_obj, &shape_obj, &affinities_obj, &axes_obj, &deltas_obj,
                          &threshold, &seeds_obj)) {
        return NULL;
    }
    PyObject *result = NULL;  /* None once grown; NULL with an error set */
    Py_buffer views[6];  /* labels, shape, affinities, axes, deltas, seeds */
    PyObject *objects[6] = {labels_obj, shape_obj, affinities_obj, axes_obj, deltas_obj, seeds_obj};
    const char *names[6] = {"labels", "shape", "affinities", "axes", "deltas", "seeds"};
    int count = 0, failed = 0;
    for (; count < 6; count++) {  /* the affinities' items are checked below: float32 or float64 */
        if (get_buffer(objects[count], &views[count], count == 2 ? 0 : 8, count == 0, names[count]) < 0) {
            goto release;
        }
    }
    Py_buffer labels = views[0], shape = views[1], affinities = views[2], axes = views[3], deltas = views[4],
              seeds = views[5];
    const int ndim = (int)(shape.len / 8), channels = (int)(axes.len / 8);
    const int64_t *dims = shape.buf, *axis = axes.buf, *delta = deltas.buf, *seed = seeds.buf;
    const int64_t n = labels.len / 8, seed_count = seeds.len / 8;
    int64_t voxels = 1;
    for (int a = 0; a < ndim; a++) {
        voxels *= dims[a];
    }
    const char *format = affinities.format ? affinities.format : "B";
    const int single = strcmp(format, "f") == 0, twice = strcmp(format, "d") == 0;
    if (ndim < 1 || ndim > 32 || voxels != n || n >= INT32_MAX || deltas.len != axes.len || (!single && !twice)
            || affinities.len / affinities.itemsize != (Py_ssize_t)channels * n) {
        PyErr_SetString(PyExc_ValueError, "grow: expected float32 or float64 affinities [C, *shape], labels of that "
                        "shape (under 2^31 voxels), one axis and delta a channel");
        goto release;
    }
    for (int c = 0; c < channels; c++) {
        if (axis[c] < 0 || axis[c] >= ndim || delta[c] == 0) {
            PyErr_Format(PyExc_ValueError, "grow: channel %d: axis %lld, delta %lld", c, (long long)axis[c],
                         (long long)delta[c]);
            goto release;
        }
    }
    for (int64_t k = 0; k < seed_count; k++) {
        if (seed[k] < 0 || seed[k] >= n) {
            PyErr_Format(PyExc_ValueError, "grow: seed %lld outside the %lld voxels", (long long)seed[k],
                         (long long)n);
            goto release;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    failed = single ? grow_float(labels.buf, n, dims, ndim, affinities.buf, channels, axis, delta, threshold, seed,
                                 seed_count)
                    : grow_double(labels.buf, n, dims, ndim, affinities.buf, channels, axis, delta, threshold, seed,
                                  seed_count);
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
    }
    else {
        result = Py_NewRef(Py_None);
    }
release:
    for (int i = 0; i < count; i++) {
        PyBuffer_Release(&views[i]);
    }
    return result;
}

/* -- the rounds of new seeds -------------------------------------------------------------------------------- */

PyDoc_STRVAR(depths_doc,
"depths(nodes, pairs, depth)\n\n"
"depth (int64 [nodes], written) of every node of the tree in which node n spans the connected component of n in\n"
"the graph pairs (int64 [E, 2], u < v, sorted) restricted to nodes >= n, as alfine.postprocess.agglomeration._depths.");

static PyObject *
depths(PyObject *self, PyObject *args)
{
    (void)self;
    long long nodes;
    PyObject *pairs_obj, *depth_obj;
    if (!PyArg_ParseTuple(args, "LOO", &nodes, &pairs_obj, &depth_obj)) {
        return NULL;
    }
    Py_buffer pairs, depth;
    if (get_buffer(pairs_obj, &pairs, 8, 0, "pairs") < 0) {
        return NULL;
    }
    if (get_buffer(depth_obj, &depth, 8, 1, "depth") < 0) {
        PyBuffer_Release(&pairs);
        return NULL;
    }
    const int64_t *pair = pairs.buf, edges = pairs.len / 16;
    int64_t *result = depth.buf;
    int failed = 0;
    if (nodes < 0 || depth.len / 8 != nodes || pairs.len % 16) {
        PyErr_SetString(PyExc_ValueError, "depths: expected pairs [E, 2] and depth [nodes]");
        failed = 1;
    }
    for (int64_t e = 0; e < edges && !failed; e++) {
        if (pair[2 * e] < 0 || pair[2 * e] >= pair[2 * e + 1] || pair[2 * e + 1] >= nodes) {
            PyErr_Format(PyExc_ValueError, "depths: pair (%lld, %lld) is not u < v < %lld", (long long)pair[2 * e],
                         (long long)pair[2 * e + 1], nodes);
            failed = 1;
        }
    }
    if (failed) {
        PyBuffer_Release(&pairs);
        PyBuffer_Release(&depth);
        return NULL;
    }
    int64_t *start = calloc((size_t)nodes + 1, sizeof(int64_t)), *later = malloc((size_t)(edges ? edges : 1) * 8);
    int64_t *root = malloc((size_t)(nodes ? nodes : 1) * 8), *parent = malloc((size_t)(nodes ? nodes : 1) * 8);
    if (start == NULL || later == NULL || root == NULL || parent == NULL) {
        failed = 1;
    }
    Py_BEGIN_ALLOW_THREADS
    if (!failed) {
        for (int64_t e = 0; e < edges; e++) {  /* each node's later neighbours, in the order of pairs */
            start[pair[2 * e] + 1]++;
        }
        for (int64_t k = 0; k < nodes; k++) {
            start[k + 1] += start[k];
            root[k] = k;
            parent[k] = -1;
        }
        for (int64_t e = 0; e < edges; e++) {
            later[start[pair[2 * e]]++] = pair[2 * e + 1];
        }
        for (int64_t k = nodes; k > 0; k--) {  /* start[k] now ends node k's list: shift back */
            start[k] = start[k - 1];
        }
        start[0] = 0;
        for (int64_t k = nodes - 1; k >= 0; k--) {  /* union-find: each set's root is its smallest node */
            for (int64_t i = start[k]; i < start[k + 1]; i++) {
                int64_t top = later[i];
                while (root[top] != top) {
                    root[top] = root[root[top]];
                    top = root[top];
                }
                if (top != k) {
                    parent[top] = k;
                    root[top] = k;
                }
            }
        }
        for (int64_t k = 0; k < nodes; k++) {  /* parents come before their children */
            result[k] = parent[k] >= 0 ? result[parent[k]] + 1 : 0;
        }
    }
    Py_END_ALLOW_THREADS
    free(start);
    free(later);
    free(root);
    free(parent);
    PyBuffer_Release(&pairs);
    PyBuffer_Release(&depth);
    if (failed) {
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"merge_by_mean_affinity", merge_by_mean_affinity, METH_VARARGS, merge_by_mean_affinity_doc},
    {"grow", grow, METH_VARARGS, grow_doc},
    {"depths", depths, METH_VARARGS, depths_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "alfine._agglomeration",
    "The loops of mean-affinity agglomeration (see alfine.postprocess.agglomeration and merging).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__agglomeration(void)
{
    return PyModule_Create(&module);
}
