"""The paper's numbers (KS supplement Table 1), shown next to a study's own."""

from __future__ import annotations

from auspread.study.spec import StudySpec, _data_section


# --- the paper's numbers (KS supplement Table 1: mean F1 of the semi-supervised comparison) -----------------------
PAPER_RATIOS = (1, 2, 5, 10, 15, 20, 50, 60, 70, 80, 90, 100)
PAPER_TABLE1 = {  # method -> dataset -> F1 at PAPER_RATIOS (the second "80%" row of KS is read as 90%)
    "pseudo-label": {"BP4D": (54.3, 57.8, 59.7, 60.7, 61.2, 62.0, 63.6, 62.7, 63.3, 62.4, 62.3, 62.7),
                     "DISFA": (40.4, 50.8, 51.5, 56.8, 57.1, 58.5, 57.9, 56.7, 57.9, 58.3, 57.5, 58.8)},
    "fixmatch": {"BP4D": (49.9, 55.1, 59.2, 60.5, 62.1, 62.0, 62.0, 62.1, 61.9, 62.2, 61.9, 62.7),
                 "DISFA": (35.6, 46.2, 52.7, 55.0, 57.7, 58.4, 57.9, 56.0, 57.8, 56.9, 57.5, 58.8)},
    "tcl": {"BP4D": (55.6, 58.9, 60.5, 61.7, 62.3, 62.7, 63.2, 62.8, 63.0, 62.9, 62.7, 63.1),
            "DISFA": (42.3, 51.2, 53.6, 55.8, 56.7, 57.9, 59.2, 60.1, 59.6, 60.4, 58.3, 59.7)},
    "ks": {"BP4D": (59.9, 62.5, 63.9, 64.4, 64.5, 64.4, 64.5, 64.4, 64.5, 64.4, 64.6, 64.7),
           "DISFA": (49.4, 52.8, 56.9, 58.0, 58.8, 59.5, 61.6, 62.9, 61.9, 62.0, 62.2, 62.8)},
}


def paper_dataset(spec: "StudySpec | None") -> str | None:
    """The KS Table 1 column to compare with: BP4D for bp4d / bp4d+ / the bp4d-like preset, DISFA likewise."""
    if spec is None:
        return None
    data = _data_section(spec)
    ds = str(data.get("dataset", "synthetic"))
    if ds == "synthetic":
        ds = str(data.get("synth_preset", "small")).replace("-like", "")
    return {"bp4d": "BP4D", "bp4d+": "BP4D", "disfa": "DISFA"}.get(ds)
