"""Question-answering agents over ReasonEmbed retrievers, in LlamaIndex and LangChain, and their comparison.

* :mod:`demos.core` - framework-free pieces every agent shares: settings, the record of one run (searches, LLM calls,
  tokens), the evidence blocks that keep retrieved text as data, the prompts and reply parsing of the agentic loop.
* :mod:`demos.llm` - the probe that decides between native tool calling and the agentic loop, and the framework LLM
  objects; the endpoint itself is chosen by :mod:`reasonembed_rag.llm`, as for robustness and ReMixer.
* :mod:`demos.retrievers` - the retrievers compared (a ReasonEmbed model, ``minilm-l6``, BM25) over one corpus.
* :mod:`demos.llama_index_agent`, :mod:`demos.langchain_agent` - the agents (tool-calling and loop) per framework.
* :mod:`demos.scoring`, :mod:`demos.compare` - answer checking, metrics, and ``python -m demos.compare``.

Importing this package imports no framework; each module imports its own lazily or at its top.
"""

from __future__ import annotations

__all__: list[str] = []
