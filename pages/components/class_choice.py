"""The class set of a new run: presets and a checkbox per emotion, with the faces per class the choice keeps."""

from __future__ import annotations

import streamlit as st

from ferlib.classes import CLASS_PRESETS, EMOTIONS, ClassSet, class_label

HELP = "A model of fewer classes trains on the faces of those classes only; its card and every page name them."


def class_set_choice(key: str, counts: dict[str, dict[str, int]] | None) -> ClassSet | None:
    """The classes ticked (a preset ticks its own), or None after saying why fewer than two cannot be trained;
    `counts`: the chosen dataset's faces per split and class, shown for the ticked classes."""
    for name in EMOTIONS:
        st.session_state.setdefault(f"{key}_{name}", True)

    def tick(preset: str) -> None:
        for name in EMOTIONS:
            st.session_state[f"{key}_{name}"] = name in CLASS_PRESETS[preset]

    st.markdown("**Classes to tell apart**", help=HELP)
    for column, preset in zip(st.columns(len(CLASS_PRESETS) + 1)[:-1], CLASS_PRESETS, strict=True):
        column.button(preset, key=f"{key}_preset_{preset}", on_click=tick, args=(preset,), width="stretch")
    boxes = zip(st.columns(len(EMOTIONS)), EMOTIONS, strict=True)
    chosen = [name for column, name in boxes if column.checkbox(class_label(name), key=f"{key}_{name}")]
    if len(chosen) < 2:
        st.warning(f"Choose at least two classes to tell apart; {len(chosen)} chosen.", icon=":material/rule:")
        return None
    if counts:
        train, validation = counts.get("train", {}), counts.get("validation", {})
        each = " · ".join(f"{name} {train.get(name, 0):,}" for name in chosen)
        total = f"{sum(train.get(name, 0) for name in chosen):,} training faces"
        st.caption(f"{each}: {total} and {sum(validation.get(name, 0) for name in chosen):,} validation faces.")
    return ClassSet.parse(chosen)
