"""Exact TreeSHAP of a bag of LightGBM boosters for many rows at once — the batch explanation path.

LightGBM's ``pred_contrib`` runs path-dependent TreeSHAP row by row: O(trees × leaves × depth²)
per row, 22 s of the 28–30 s of a province's batch scoring (docs/benchmarks.md, issue 14). It
computes, for every leaf *l* of every tree, the Shapley values of the product game

    g_l(S) = v_l · Π_{j ∈ D_l ∩ S} s_j(x) · Π_{j ∈ D_l \\ S} r_j

over the distinct features ``D_l`` on the leaf's path, where ``s_j(x)`` says whether the row
satisfies every split on feature *j* along that path and ``r_j`` is the share of the training rows
(node counts) that went that way (Lundberg et al. 2020, Algorithm 2; the features off the path are
null players). The Shapley values depend on the row only through the bits ``s_j(x)``, which are a
function of the row's left/right decision at each of the tree's internal nodes. A tree with 15
leaves has 14 internal nodes, and the rows of a province take only a few hundred of the 2¹⁴
possible decision patterns per tree. So (the idea of Fast TreeSHAP v2, Yang 2021, taken one step
further): compute every row's decision pattern per tree with a few vectorised comparisons, the
Shapley values once per distinct pattern, and gather them back to the rows.

The values equal ``pred_contrib``'s up to floating-point rounding (tests/models/test_tree_shap.py
checks both the decisions, against ``pred_leaf``, and the values). Trees with more than
``MAX_NODES`` internal nodes are left to ``pred_contrib`` (see :func:`supports`).
"""

from __future__ import annotations

import math
import weakref
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np

MAX_NODES = 16  # decision patterns are counted in a 2**nodes table per tree
_MISSING = {"None": 0, "Zero": 1, "NaN": 2}
# LightGBM's kZeroThreshold (a float literal): |x| ≤ it counts as zero for missing_type Zero.
_ZERO = float(np.float32(1e-35))


@dataclass(frozen=True)
class _Trees:
    """The trees of one or more boosters, flattened into padded arrays."""

    # internal nodes, all trees concatenated (tree t's nodes: node_start[t] … node_start[t+1])
    feature: np.ndarray  # (N,) split feature
    threshold: np.ndarray  # (N,) float32 threshold, rounded down (x ≤ t in float32 ⇔ x ≤ t in float64)
    nan_left: np.ndarray  # (N,) bool: where a missing value goes (NaN reads as 0 unless NaN is missing)
    default_left: np.ndarray  # (N,) bool
    zero_missing: np.ndarray  # nodes whose missing value is zero (zero_as_missing)
    categorical: dict[int, np.ndarray]  # node → categories that go left
    node_start: np.ndarray  # (T + 1,)
    # leaves, padded to (T, L, K): per leaf, the distinct features on its path
    mask: np.ndarray  # bits of the tree's nodes that split on the player's feature
    want: np.ndarray  # the subset of those bits where the path goes left
    ratio: np.ndarray  # r_j: product of child count / parent count along those nodes (1 for padding)
    slot: np.ndarray  # the player's index in the tree's feature list (-1 for padding)
    value: np.ndarray  # (T, L) leaf value × the tree's weight (0 for padding)
    tree_features: list[np.ndarray]  # per tree, its distinct split features (slot → feature)
    bias: float  # Σ weight × expected value of every tree


_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _tree_dumps(booster: lgb.Booster, num_iteration: int | None) -> list[dict]:
    key = (num_iteration or 0,)
    got = _cache.get(booster)
    if got is not None and got[0] == key:
        return got[1]
    info = booster.dump_model(num_iteration=num_iteration or -1)
    if info.get("num_tree_per_iteration", 1) != 1:
        raise ValueError("the fast TreeSHAP path explains binary or regression boosters only")
    trees = [t["tree_structure"] for t in info["tree_info"]]
    _cache[booster] = (key, trees)
    return trees


def _n_internal(node: dict) -> int:
    if "split_index" not in node:
        return 0
    return 1 + _n_internal(node["left_child"]) + _n_internal(node["right_child"])


def supports(boosters: list[lgb.Booster], num_iterations: list[int | None]) -> bool:
    """Whether every tree is small enough for this path (else use ``pred_contrib``)."""
    try:
        return all(
            _n_internal(t) <= MAX_NODES
            for b, it in zip(boosters, num_iterations, strict=True)
            for t in _tree_dumps(b, it)
        )
    except ValueError:
        return False


def _round_down32(t: float) -> np.float32:
    f = np.float32(t)
    return np.nextafter(f, np.float32(-np.inf)) if float(f) > t else f


def _flatten(boosters: list[lgb.Booster], num_iterations: list[int | None]) -> _Trees:
    weight = 1.0 / len(boosters)
    feature, threshold, missing, default_left, categorical, node_start = [], [], [], [], {}, [0]
    leaves_per_tree: list[list[tuple[float, list[tuple[int, int, int, float]]]]] = []
    bias = 0.0
    for booster, it in zip(boosters, num_iterations, strict=True):
        for root in _tree_dumps(booster, it):
            if "split_index" not in root:  # a single leaf: a constant
                bias += weight * float(root["leaf_value"])
                continue
            base = len(feature)
            leaves: list[tuple[float, list[tuple[int, int, int, float]]]] = []
            # iterative walk: (node, path of (local node, feature, went_left, ratio))
            stack = [(root, [])]
            while stack:
                node, path = stack.pop()
                if "split_index" not in node:
                    leaves.append((float(node["leaf_value"]), path))
                    continue
                local = int(node["split_index"])
                g = base + local
                while len(feature) <= g:
                    feature.append(0)
                    threshold.append(np.float32(0))
                    missing.append(0)
                    default_left.append(False)
                feature[g] = int(node["split_feature"])
                default_left[g] = bool(node["default_left"])
                missing[g] = _MISSING[node["missing_type"]]
                if node["decision_type"] == "==":
                    categorical[g] = np.array([int(c) for c in str(node["threshold"]).split("||")])
                    threshold[g] = np.float32(np.nan)
                else:
                    threshold[g] = _round_down32(float(node["threshold"]))
                count = float(node["internal_count"])
                for child, left in ((node["left_child"], 1), (node["right_child"], 0)):
                    c = float(child.get("internal_count", child.get("leaf_count", 0)))
                    stack.append((child, [*path, (local, feature[g], left, c / count)]))
            node_start.append(len(feature))
            leaves_per_tree.append(leaves)
    T = len(leaves_per_tree)
    L = max((len(v) for v in leaves_per_tree), default=1)
    players = []
    for leaves in leaves_per_tree:
        per_leaf = []
        for _v, path in leaves:
            by_feature: dict[int, list] = {}
            for local, f, left, r in path:
                m, w, rr = by_feature.get(f, (0, 0, 1.0))
                by_feature[f] = (m | (1 << local), w | (left << local), rr * r)
            per_leaf.append(by_feature)
        players.append(per_leaf)
    K = max((len(p) for per_leaf in players for p in per_leaf), default=1)
    mask = np.zeros((T, L, K), dtype=np.int32)
    want = np.zeros((T, L, K), dtype=np.int32)
    ratio = np.ones((T, L, K))
    slot = np.full((T, L, K), -1, dtype=np.int32)
    value = np.zeros((T, L))
    tree_features = []
    for t, (leaves, per_leaf) in enumerate(zip(leaves_per_tree, players, strict=True)):
        feats = sorted({f for p in per_leaf for f in p})
        index = {f: i for i, f in enumerate(feats)}
        tree_features.append(np.array(feats, dtype=np.int64))
        for li, ((v, _path), p) in enumerate(zip(leaves, per_leaf, strict=True)):
            value[t, li] = weight * v
            for k, (f, (m, w, r)) in enumerate(p.items()):
                mask[t, li, k], want[t, li, k], ratio[t, li, k], slot[t, li, k] = m, w, r, index[f]
            # the tree's expected value: Σ_l v_l × the share of training rows that reach l
            bias += weight * v * math.prod(r for _m, _w, r in p.values())
    missing_a, threshold_a = np.array(missing, dtype=np.int8), np.array(threshold, dtype=np.float32)
    default_left_a = np.array(default_left, dtype=bool)
    return _Trees(
        feature=np.array(feature, dtype=np.int64),
        threshold=threshold_a,
        nan_left=np.where(missing_a == 2, default_left_a, np.float32(0) <= threshold_a),
        default_left=default_left_a,
        zero_missing=np.flatnonzero(missing_a == 1),
        categorical=categorical,
        node_start=np.array(node_start, dtype=np.int64),
        mask=mask,
        want=want,
        ratio=ratio,
        slot=slot,
        value=value,
        tree_features=tree_features,
        bias=bias,
    )


def _goes_left(trees: _Trees, XT: np.ndarray) -> np.ndarray:
    """(nodes, n) bool: LightGBM's decision at every internal node for the rows (columns) of XT."""
    v = XT[trees.feature]  # (N, n) float32
    # NaN never passes ``x <= threshold``; where it goes instead is one flag per node
    left = (v <= trees.threshold[:, None]) | (np.isnan(v) & trees.nan_left[:, None])
    for g in trees.zero_missing:  # zero (or NaN, read as zero) takes the default side
        x = XT[trees.feature[g]]
        zero = np.isnan(x) | (np.abs(x) <= _ZERO)
        left[g] = np.where(zero, trees.default_left[g], x <= trees.threshold[g])
    for g, cats in trees.categorical.items():
        x = XT[trees.feature[g]]
        ok = ~np.isnan(x) & (x >= 0)
        left[g] = ok & np.isin(np.where(ok, x, -1).astype(np.int64), cats)
    return left


def _codes(trees: _Trees, X: np.ndarray, rows_per_chunk: int, pool: Executor | None = None) -> np.ndarray:
    """(T, n) the decision pattern of every row in every tree (bit b: node b of the tree goes left);
    blocks of rows on ``pool``'s threads when given."""
    n, T = len(X), len(trees.node_start) - 1
    sizes = np.diff(trees.node_start)
    # node g of tree t sits at row t * width + its local index of a padded (T * width, n) layout
    width = int(sizes.max())
    local = np.arange(len(trees.feature)) - np.repeat(trees.node_start[:-1], sizes)
    padded = np.repeat(np.arange(T), sizes) * width + local
    codes = np.empty((T, n), dtype=np.int32)

    def block(span: tuple[int, int]) -> None:
        XT = np.ascontiguousarray(X[span[0] : span[1]].T)
        bits = np.zeros((T * width, XT.shape[1]), dtype=np.int32)
        bits[padded] = _goes_left(trees, XT)
        bits = bits.reshape(T, width, -1)
        code = bits[:, 0].copy()
        for b in range(1, width):
            code |= bits[:, b] << b
        codes[:, span[0] : span[1]] = code

    list((pool.map if pool is not None else map)(block, _spans(n, rows_per_chunk)))
    return codes


def _spans(n: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def _shapley(trees: _Trees, tree: np.ndarray, code: np.ndarray) -> np.ndarray:
    """(P, L, K) each player's Shapley value in its leaf's game, for P (tree, decision pattern) pairs.

    A leaf's game depends on the pattern only through the bits of its own players: many patterns
    of a tree give a leaf the same bits, so each distinct (tree, leaf, bits) is computed once —
    with the same operations, so the values are those of computing every pair."""
    P, L, K = len(tree), trees.mask.shape[1], trees.mask.shape[2]
    bits = (code[:, None, None] & trees.mask[tree]) == trees.want[tree]  # (P, L, K)
    key = (tree[:, None] * L + np.arange(L)) << K | (bits.astype(np.int64) << np.arange(K)).sum(axis=2)
    _, first, inverse = np.unique(key.ravel(), return_index=True, return_inverse=True)
    leaf = first % L
    t = tree[first // L]
    phi = _leaf_shapley(
        bits.reshape(P * L, K)[first].astype(np.float64), trees.ratio[t, leaf], trees.value[t, leaf]
    )
    return phi[inverse.ravel()].reshape(P, L, K)


def _leaf_shapley(s: np.ndarray, r: np.ndarray, value: np.ndarray) -> np.ndarray:
    """(U, K) the players' Shapley values of U leaf games: bits ``s``, ratios ``r``, leaf values."""
    K = s.shape[-1]
    # Π_j (r_j + s_j z): coefficients of z^0 … z^K
    poly = np.zeros((*s.shape[:-1], K + 1))
    poly[..., 0] = 1.0
    for j in range(K):
        shifted = np.zeros_like(poly)
        shifted[..., 1:] = poly[..., :-1] * s[..., j, None]
        poly = poly * r[..., j, None] + shifted
    w = np.array([math.factorial(m) * math.factorial(K - 1 - m) / math.factorial(K) for m in range(K)])
    phi = np.empty_like(s)
    for i in range(K):
        si, ri = s[..., i], r[..., i]
        # divide out player i's factor (r_i + s_i z): by the constant r_i when s_i = 0, by
        # synthetic division (from the top, stable since r_i ≤ 1) when s_i = 1
        total = np.zeros_like(si)
        q = poly[..., K].copy()  # s_i = 1: q_{K-1} = p_K
        for m in range(K - 1, -1, -1):
            quot = np.where(si > 0, q, poly[..., m] / ri)
            total += w[m] * quot
            q = poly[..., m] - ri * q
        phi[..., i] = (si - ri) * total
    return phi * value[..., None]


_flat: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _flattened(boosters: list[lgb.Booster], num_iterations: list[int | None]) -> _Trees:
    """:func:`_flatten`, kept (weakly, by the bag's first booster) for the next call on the same bag."""
    got = _flat.get(boosters[0])
    if (
        got is not None
        and len(got[0]) == len(boosters)
        and all(r() is b for r, b in zip(got[0], boosters, strict=True))
        and got[1] == num_iterations
    ):
        return got[2]
    trees = _flatten(boosters, num_iterations)
    _flat[boosters[0]] = (tuple(weakref.ref(b) for b in boosters), list(num_iterations), trees)
    return trees


def contributions(
    boosters: list[lgb.Booster],
    X: np.ndarray,
    num_iterations: list[int | None] | None = None,
    *,
    rows_per_chunk: int = 2048,
    pairs_per_chunk: int = 4096,
    threads: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """The mean TreeSHAP contributions of ``boosters`` (binary), as ``pred_contrib`` gives them.

    Parameters
    ----------
    boosters : the bag; their raw margins are averaged, so are their contributions.
    X : (n, F) float32 matrix. num_iterations : per booster, its trees used (None/0: all).
    threads : the decision patterns, the Shapley values and the gathering back to the rows run in
        this many threads (numpy releases the GIL). Each piece of work — a block of rows, a block of
        (tree, pattern) pairs — is computed as it would be alone, so the values do not depend on it.

    Returns
    -------
    ``(contrib (n, F), bias (n,))`` with ``contrib.sum(1) + bias`` the bag-mean raw margin.
    """
    num_iterations = num_iterations or [None] * len(boosters)
    trees = _flattened(boosters, [it or None for it in num_iterations])
    X = np.asarray(X, dtype=np.float32)
    n, F = X.shape
    out = np.zeros((F, n))
    T = len(trees.tree_features)
    if not (T and n):
        return out.T, np.full(n, trees.bias)
    with ThreadPoolExecutor(max(1, threads)) as pool:
        codes = _codes(trees, X, rows_per_chunk, pool)
        # the distinct patterns of each tree, and each row's index among them
        pair_tree, pair_code, offsets = [], [], np.zeros(T + 1, dtype=np.int64)
        for t in range(T):
            nodes = int(trees.node_start[t + 1] - trees.node_start[t])
            seen = np.bincount(codes[t], minlength=1 << nodes)
            present = np.flatnonzero(seen)
            index = np.zeros(len(seen), dtype=np.int32)
            index[present] = np.arange(len(present), dtype=np.int32)
            codes[t] = index[codes[t]]
            pair_tree.append(np.full(len(present), t, dtype=np.int64))
            pair_code.append(present.astype(np.int32))
            offsets[t + 1] = offsets[t] + len(present)
        pair_tree_a, pair_code_a = np.concatenate(pair_tree), np.concatenate(pair_code)
        J = max(len(f) for f in trees.tree_features)
        per_pair = np.zeros((len(pair_tree_a), J))

        def shapley(span: tuple[int, int]) -> None:
            tp, cp = pair_tree_a[span[0] : span[1]], pair_code_a[span[0] : span[1]]
            phi = _shapley(trees, tp, cp)
            slot = trees.slot[tp]
            keep = slot >= 0
            flat = (np.arange(len(tp))[:, None, None] * J + slot)[keep]
            per_pair[span[0] : span[1]] = np.bincount(flat, weights=phi[keep], minlength=len(tp) * J).reshape(
                len(tp), J
            )

        list(pool.map(shapley, _spans(len(pair_tree_a), pairs_per_chunk)))

        def gather(span: tuple[int, int]) -> None:
            part = out[:, span[0] : span[1]]
            for t in range(T):
                feats = trees.tree_features[t]
                block = per_pair[offsets[t] : offsets[t + 1], : len(feats)].T  # (k, u)
                part[feats] += np.take(block, codes[t, span[0] : span[1]], axis=1)

        list(pool.map(gather, _spans(n, -(-n // max(1, threads)))))
    return out.T, np.full(n, trees.bias)
