"""LLM-assisted construction of RoleInstruct data (the paper's four GPT-4 steps).

    annotate  one of the 10 emotion labels per script utterance (batches, index-aligned JSON)
    profile   a structured character profile from the template and the annotated dialogue
    qa        Context-Instruct: character-specific Q&A from profile + script excerpt
    general   general instructions answered in the character's voice, few-shot

``python construct.py stage=...`` drives them (:mod:`rolecraft.construct.main`). Every answer is
journaled in SQLite before it is used, so a rerun (after a crash or ``kill -9``) pays only for what
is missing and writes exactly the output an uninterrupted run would have written.
"""
