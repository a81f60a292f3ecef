"""Answers from any source: a local or hub model, a trained run, or an OpenAI-compatible endpoint.

One layer for end-of-training evaluation, evaluate.py and chat.py: an *engine* takes chats
(lists of messages) and returns answers in batch (``answer``) or one answer as a stream of text
pieces (``stream``). The device is picked once, here. A future in-process GPU engine (vLLM)
is one more engine class.
"""
