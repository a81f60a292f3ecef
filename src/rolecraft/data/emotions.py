"""The ten emotion labels and every spelling of them we read, normalised in one place.

The canonical format stores the English names of :data:`EMOTIONS`; prompts show the Chinese
names of :data:`EMOTION_ZH`. Sources write labels in many ways (Chinese names, synonyms, English
in any case): :func:`normalise_emotion` is the one place that reads them, for the importers,
``rolecraft data agreement`` and the dataset validator. Imports nothing of RoleCraft.
"""

from __future__ import annotations

# The paper's ten labels: Ekman's six + neutral, frustration, excitement, other.
EMOTIONS = (
    "anger", "disgust", "fear", "happiness", "sadness",
    "surprise", "neutral", "frustration", "excitement", "other",
)
# How labels are written in Chinese prompts (the data is Chinese; emotions=on shows these).
EMOTION_ZH = {
    "anger": "愤怒", "disgust": "厌恶", "fear": "恐惧", "happiness": "快乐", "sadness": "悲伤",
    "surprise": "惊讶", "neutral": "中立", "frustration": "沮丧", "excitement": "兴奋", "other": "其他",
}

#: The paper's ten labels as written in the data (clean, no defect).
CANONICAL_ZH: dict[str, str] = {zh: en for en, zh in EMOTION_ZH.items()}

#: Every label spelling the importers accept, mapped to a canonical label. The first block
#: is the paper's ten labels; the rest are stray spellings. Those marked "seen" occur in the
#: published RoleInstruct v1 files (14 characters); the others are common synonyms, mapped the
#: same way. English keys are lower case and matched case-insensitively.
EMOTION_ALIASES: dict[str, str] = {
    **CANONICAL_ZH,
    # --- stray Chinese labels ---
    "激动": "excitement",   # seen: 416 lines, "(激动)但是我现在有点小激动"
    "生气": "anger", "气愤": "anger", "恼火": "anger",
    "开心": "happiness", "高兴": "happiness", "喜悦": "happiness",
    "感激": "happiness", "感谢": "happiness",
    "难过": "sadness", "伤心": "sadness", "悲哀": "sadness",
    "害怕": "fear", "紧张": "fear", "担心": "fear",
    "惊喜": "surprise", "吃惊": "surprise", "震惊": "surprise",
    "讨厌": "disgust", "恶心": "disgust",
    "失望": "frustration", "无奈": "frustration", "郁闷": "frustration",
    "中性": "neutral", "平静": "neutral",
    "其它": "other",
    # --- English labels (matched case-insensitively) ---
    "anger": "anger", "angry": "anger",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "afraid": "fear", "scared": "fear",
    "happiness": "happiness", "happy": "happiness", "joy": "happiness",
    "grateful": "happiness",   # seen: 21 lines, "grateful谢谢您..." (gratitude: positive valence)
    "gratitude": "happiness",
    "sadness": "sadness", "sad": "sadness",   # "sadness" seen: 8 lines, "sadness有人打我"
    "surprise": "surprise", "surprised": "surprise",
    "neutral": "neutral",
    "frustration": "frustration", "frustrated": "frustration",
    "excitement": "excitement", "excited": "excitement",
    "other": "other",
}
assert set(EMOTION_ALIASES.values()) <= set(EMOTIONS)

# the ten labels only: English names (any case) and Chinese names
_CANONICAL: dict[str, str] = {**{e: e for e in EMOTIONS}, **CANONICAL_ZH}


def normalise_emotion(label: object, aliases: bool = True) -> str | None:
    """The canonical label of ``label``, or None when it is not a label we know.

    Surrounding whitespace is ignored and English is matched in any case. With ``aliases`` the
    stray spellings of :data:`EMOTION_ALIASES` count too (importers read messy sources); without,
    only the ten labels' English and Chinese names (annotations being scored, mapping targets).
    """
    if not isinstance(label, str):
        return None
    text = label.strip()
    table = EMOTION_ALIASES if aliases else _CANONICAL
    return table.get(text) or table.get(text.lower())
