"""The book's readings of its verdicts: prose built from the claims table.

Each function takes the verdict table of :func:`prunelib.book.book_verdicts` (one row per
claim: ``id``, ``verdict``, ``n``, the effect and its corrected interval) and says, in
Markdown, what the verdicts together mean -- so a chapter's conclusion follows from the
store by committed code and changes when the verdicts do.
"""

from __future__ import annotations

import pandas as pd

from . import claims as C


def regime_reading(table: pd.DataFrame) -> str:
    """Chapter 4's reading of the regime claims (``r1``-``r11`` and ``c4``), in Markdown:
    what separates "pruning helps calibration" from "pruning acts like early stopping", and
    which of the two the verdicts support.

    The two readings predict different things. If pruning acts like early stopping on an
    over-trained network, its ECE drop is larger in the fixed regime (r8), a temperature
    removes it (r5 not reproduced), a network of the pruned size trained the same way is as well
    calibrated (r6), and the pruned network lands where early stopping puts the dense one
    (r10, r11). If pruning helps in its own right, the drop appears under early stopping too
    (c4), survives temperature scaling (r5) and beats the small dense network (r6).
    """
    v = table.set_index("id")

    def said(cid: str) -> str:
        r = v.loc[cid]
        return f"{C.effect_text(r)} ({cid}, *{r['verdict']}*)"

    def verdict(cid: str) -> str:
        return v.loc[cid, "verdict"]

    needed = [c for c in ("r1", "r2", "c4", "r5", "r6", "r8", "r10", "r11") if c not in v.index]
    if needed:
        raise ValueError(f"the table lacks the claims {needed}: pass book_verdicts(...)")
    if (v.loc[["r1", "r2", "r8"], "n"] < 2).any():
        return ("The fixed-budget grid has fewer than two seeds paired with the early-stopping "
                "grid in the store yet, so nothing separates the two readings.")
    ratio = v.loc["r2", "ratio"]
    temperature = {
        "reproduced": "pruning changes more than the scale of the confidences.",
        "no meaningful effect": "it is a change of scale that one temperature undoes, the kind "
                                "of change that stopping earlier also makes.",
        "contradicted": "after temperature scaling the pruned network is the worse calibrated one.",
    }.get(verdict("r5"), "the data cannot yet tell whether it is more than a change of scale.")
    capacity = {
        "reproduced": "The pruned network is better calibrated than a network of its size, so "
                      "the procedure, not only the size, matters.",
        "no meaningful effect": "A network of the pruned size trained the same way is as well "
                                "calibrated: the effect belongs to the size, not to pruning.",
        "contradicted": "The network of the pruned size trained from scratch is the better "
                        "calibrated one.",
    }.get(verdict("r6"), "Undecided.")
    lines = [
        f"- **Over-confidence.** The fixed budget changes the dense network's ECE by {said('r1')}.",
        (f"- **The pruning effect in each regime.** Removing {ratio:.0%} of the head's neurons "
         f"changes the ECE by {said('r2')} in the fixed regime and by {said('c4')} with early "
         f"stopping; the difference between the regimes is {said('r8')}."),
        (f"- **Temperature.** After temperature scaling the fixed-regime change is "
         f"{said('r5')}: {temperature}"),
        (f"- **Capacity.** Against the small dense network of the same shape, trained with the "
         f"same budget from a fresh initialisation: {said('r6')}. {capacity}"),
        (f"- **Where it lands.** The pruned over-trained network minus the early-stopped dense "
         f"network: ECE {said('r10')}, NLL {said('r11')}."),
    ]
    n = int(v.loc[["r1", "r2", "r8"], "n"].min())
    lines.append(f"\n**Reading ({n} seeds paired across the regimes):** {regime_conclusion(table)}")
    return "\n".join(lines)


def regime_conclusion(table: pd.DataFrame) -> str:
    """The last sentence of :func:`regime_reading`: which reading the verdicts support, or
    which claims (and about how many seeds) would decide it."""
    v = table.set_index("id")

    def verdict(cid: str) -> str:
        return v.loc[cid, "verdict"]

    if (v.loc[["r1", "r2", "r8"], "n"] < 2).any():
        return "not in the store yet (fewer than two seeds paired across the regimes)."
    like_es = verdict("r8") == "reproduced" and (
        verdict("r5") in ("no meaningful effect", "contradicted") or verdict("r10") == "reproduced")
    helps = all(verdict(c) == "reproduced" for c in ("c4", "r5", "r6"))
    if verdict("r2") in ("no meaningful effect", "contradicted"):
        return ("pruning does not lower the ECE of the over-confident network, so neither reading "
                "is needed.")
    if like_es and helps:
        return ("both: pruning improves calibration in its own right (with early stopping too, "
                "after temperature scaling, against a network of its size), and more so where the "
                "dense network is over-trained.")
    if like_es:
        return ("pruning's calibration gain is what early stopping gives: it appears where the "
                "dense network is over-trained, and "
                + ("a temperature removes it." if verdict("r5") != "reproduced" else
                   "the pruned network lands where early stopping puts the dense one."))
    if helps:
        return ("pruning improves calibration in its own right: the gain appears with early "
                "stopping too, survives temperature scaling and beats a network of the same size.")
    undecided = [c + (f" (≈{int(k)} seeds)" if pd.notna(k := v.loc[c, "seeds_needed"]) and k else "")
                 for c in ("r5", "r6", "r8", "r10") if verdict(c) == "inconclusive"]
    return ("the data do not yet separate the two readings"
            + (f"; undecided: {', '.join(undecided)}." if undecided else "."))


#: the checks of c4 (structured pruning lowers ECE at Pm ~ 0.8) and what each one varies
C4_CHECKS = {"cx1": "after temperature scaling", "cx2": "against the small dense network",
             "cx3": "on the NLL", "cx4": "on the Brier score"}


def calibration_checks_reading(table: pd.DataFrame) -> str:
    """The conclusion's reading of c4 through its checks ``cx1``-``cx4`` (:data:`C4_CHECKS`).

    A lower ECE after pruning (c4 *reproduced*) is read as an improvement in calibration only
    as far as the checks carry it: each check the effect *survives* (reproduced), is *absent*
    from (contradicted or no meaningful effect) or is *undecided* on (inconclusive) is named.
    When c4 itself is contradicted or shows no meaningful effect, the reading says our data
    contradict the poster; when c4 is inconclusive, that it cannot be decided yet.

    >>> t = pd.DataFrame({"id": ["c4", "cx1", "cx2", "cx3", "cx4"],
    ...                   "verdict": ["reproduced", "reproduced", "no meaningful effect",
    ...                               "inconclusive", "inconclusive"]})
    >>> calibration_checks_reading(t).split("; ")[1:3]
    ['it survives after temperature scaling (cx1)', 'it is absent against the small dense network (cx2)']
    """
    v = table.set_index("id")
    missing = [c for c in ("c4", *C4_CHECKS) if c not in v.index]
    if missing:
        raise ValueError(f"the table lacks the claims {missing}: pass book_verdicts(...)")
    c4 = v.loc["c4", "verdict"]
    if c4 in ("contradicted", "no meaningful effect"):
        return ("Our data contradict the poster's central claim: structured pruning does not "
                f"lower ECE here (c4, *{c4}*).")
    if c4 != "reproduced":
        return ("Whether structured pruning lowers ECE cannot be decided with the seeds in the "
                f"store (c4, *{c4}*), so its checks cx1-cx4 carry no reading yet.")

    def named(ids: list[str]) -> str:
        return ", ".join(f"{C4_CHECKS[c]} ({c})" for c in ids)

    by = {k: [c for c in C4_CHECKS if v.loc[c, "verdict"] in verdicts] for k, verdicts in (
        ("held", ("reproduced",)), ("gone", ("contradicted", "no meaningful effect")),
        ("open", ("inconclusive",)))}
    parts = ([f"it survives {named(by['held'])}"] if by["held"] else []) + (
        [f"it is absent {named(by['gone'])}"] if by["gone"] else []) + (
        [f"the data cannot yet tell whether it holds {named(by['open'])}"] if by["open"] else [])
    text = "So the lower ECE of a pruned network is real as measured (c4); " + "; ".join(parts) + "."
    if len(by["held"]) == len(C4_CHECKS):
        text += (" On this evidence pruning improves calibration, not only the ECE estimate: the "
                 "gain survives a temperature, a network of the same size and both proper "
                 "scoring rules.")
    elif len(by["gone"]) == len(C4_CHECKS):
        text += (" On this evidence pruning does not improve calibration: one temperature "
                 "undoes the drop, a network of the same size trained from scratch matches it, "
                 "and the proper scoring rules do not move.")
    elif not by["held"]:
        text += (" Until those checks decide, a lower ECE alone is no evidence that pruning "
                 "improves calibration rather than rescaling the confidences.")
    return text
