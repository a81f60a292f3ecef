"""What annotators are asked: the criteria, the 1-5 scale, the sheet columns, the file formats
and the instructions shipped with every export (README.txt). Shared by export and import."""

from __future__ import annotations

from rolecraft.errors import DataError

CRITERIA = ("ce", "consistency", "ed")
CRITERION_NAMES = {"ce": "Communication Effectiveness", "consistency": "Consistency", "ed": "Expressive Diversity"}
CRITERION_SHORT = {"ce": "CE", "consistency": "Consistency", "ed": "ED"}
SHEET_COLUMNS = ("item_id", "question", "character", "profile", "answer_id", "answer", *CRITERIA)
KINDS = ("raw", "general", "specific")
DEFAULT_KINDS = ("general", "specific")
KEY_FORMAT = "rolecraft-human-key/1"
RESULTS_FORMAT = "rolecraft-human-results/1"
SCORE_MIN, SCORE_MAX = 1, 5


class HumanEvalError(DataError):
    """Bad input to ``rolecraft human`` (answers, sheets, key)."""


README = """\
RoleCraft human evaluation — instructions for annotators
=======================================================

You received one sheet (sheet_NN.csv) and this file. Open the sheet in Excel, WPS, LibreOffice
or Numbers. Each question ("item_id") comes with the role's profile and {n_models} answers
written by different systems, in a random order, under opaque ids ("answer_id"). You do not
know, and should not try to guess, which system wrote which answer.

For every answer, fill the three score columns with a whole number from 1 (worst) to 5 (best):

  ce           Communication Effectiveness
  consistency  Consistency with the character profile
  ed           Expressive Diversity

Rate each criterion on its own (a well-written answer can still be out of character). Compare
each answer with the rubric below, not with the other answers to the same question. A longer
answer is not a better answer by itself. Leave a cell empty only if you really cannot judge it
(an empty cell counts as "not rated"). An empty answer gets 1 on every criterion.

Do not add, delete or rename columns, and do not edit item_id or answer_id. Sorting rows is
fine. Save as "CSV UTF-8 (comma delimited)" and send the file back under its original name:
the file name identifies you. Cells that start with = + - or @ have a ' in front of them, so
the spreadsheet shows them as text; ignore that '.

Rubric
------

Communication Effectiveness (ce): does the answer respond to what was asked, clearly and
naturally, as a reply in a conversation?
  5  responds fully and directly; clear, fluent and natural; nothing irrelevant
  4  responds well; a small gap, a little vague, or slightly awkward in places
  3  responds only in part; noticeable gaps, vagueness or clumsy wording
  2  mostly misses the point, or is hard to follow
  1  off topic, incoherent, empty, or a refusal without reason

Consistency (consistency): does the answer fit the character described in the profile —
personality, background, relationships, knowledge and way of speaking?
  5  fully in character throughout; matches the profile, contradicts nothing
  4  in character with a minor slip (a tone or detail slightly off)
  3  generic: anyone could have said it; neither clearly in nor out of character
  2  noticeably out of character, or contradicts a detail of the profile
  1  breaks character (e.g. "as an AI language model ...") or contradicts the profile outright

Expressive Diversity (ed): is the wording varied, vivid and expressive (emotion, tone,
personal touch), rather than templated, flat or repetitive?
  5  vivid and varied wording; emotion and personality come through; no repetition
  4  mostly varied and expressive; a few stock phrases
  3  plain but acceptable; some stock phrases or mild repetition
  2  formulaic or flat; repetitive phrasing
  1  degenerate: loops or repeats itself, copies the question, or is empty

评分说明（中文）：每个回答按三项分别打 1–5 的整数分（1 最差，5 最好）：ce 沟通有效性（是否清楚、
自然、切题地回应了问题）；consistency 人设一致性（是否符合人物设定的性格、背景、关系、知识和说话方式）；
ed 表达多样性（用词是否生动多样、有情感和个性，而非模板化、平淡或重复）。各项独立评分，对照上面的标准
而不是与同一问题的其他回答比较；回答长不等于好。确实无法判断时留空。不要修改列和 answer_id；
另存为“CSV UTF-8（逗号分隔）”，文件名保持不变。
"""
