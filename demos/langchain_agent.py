"""The LangChain agent: a native tool-calling agent (``langchain.agents.create_agent``), or the agentic loop as a
LangGraph ``StateGraph``.

Both search through one LangChain retriever (our embeddings over Chroma, or :class:`BM25LangChainRetriever`) with
the agent's query passed through unchanged: the task instruction is added by our embeddings. A tool call with bad
arguments comes back to the model as an error message (LangGraph's tool node), so the model can retry. Documents
reach the LLM only as data blocks built by :class:`~demos.core.AgentRun`. Every LLM call (messages sent, tokens) is
recorded by a callback handler, so the record is what the model actually received.

Loop graph: ``rewrite`` -> ``retrieve`` -> ``judge`` (the LLM answers with citations, or asks for another search)
-> ``retrieve`` again | end; ``retrieve`` -> ``answer`` once ``max_searches`` retrievals are spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict
from uuid import UUID

from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import StructuredTool
from langgraph.errors import GraphRecursionError
from langgraph.graph import END, START, StateGraph
from pydantic import ConfigDict

from reasonembed_rag.retrieval import BM25Index

from .core import SEARCH_TOOL_DESCRIPTION, SEARCH_TOOL_NAME, AgentResult, AgentRun, BaseAgent, Hit

__all__ = ["BM25LangChainRetriever", "LangChainAgent"]


class BM25LangChainRetriever(BaseRetriever):
    """BM25 (:class:`~reasonembed_rag.retrieval.BM25Index`) as a LangChain retriever; ``Document.id`` is the corpus
    id."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: BM25Index
    """The BM25 index searched."""
    k: int = 10
    """Documents returned per query."""

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        (ranking,) = self.index.search([query], self.k)
        return [
            Document(id=doc_id, page_content=self.index.documents[doc_id], metadata={"score": score})
            for doc_id, score in ranking
        ]


def to_hits(documents: Sequence[Document]) -> list[Hit]:
    """LangChain documents (best first) as :class:`~demos.core.Hit` objects; the score is the rank when absent."""
    return [
        Hit(str(doc.id), doc.page_content, float(doc.metadata.get("score", len(documents) - rank)))
        for rank, doc in enumerate(documents)
    ]


class _Recorder(BaseCallbackHandler):
    """Records each chat model call of a run: the messages it received and its token usage."""

    def __init__(self, run: AgentRun) -> None:
        self.run = run
        self._pending: dict[UUID, list[BaseMessage]] = {}

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], *, run_id: UUID, **kwargs: Any
    ) -> None:
        self._pending[run_id] = messages[0] if messages else []

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        generation = response.generations[0][0] if response.generations and response.generations[0] else None
        usage = getattr(generation.message, "usage_metadata", None) if isinstance(generation, ChatGeneration) else None
        self.run.record_llm(
            self._pending.pop(run_id, []),
            prompt_tokens=(usage or {}).get("input_tokens", 0),
            completion_tokens=(usage or {}).get("output_tokens", 0),
        )


class _LoopState(TypedDict, total=False):
    query: str
    reply: str


class LangChainAgent(BaseAgent):
    """Answers questions with a LangChain retriever and chat model.

    Args:
        retriever: Any LangChain retriever; it should return at least ``settings.depth`` documents.
        llm: A LangChain chat model (one with ``bind_tools`` for ``mode="tools"``), e.g.
            :func:`demos.llm.langchain_chat_model`.
        mode: ``tools`` (``create_agent``) or ``loop`` (the LangGraph graph).
        settings: Limits and prompt settings.

    Example:
        >>> agent = LangChainAgent(store.langchain_retriever(k=10), chat_model, mode="loop")  # doctest: +SKIP
        >>> agent.answer("What is the remainder of 3^100 divided by 7?").final_answer  # doctest: +SKIP
        '4'
    """

    framework = "langchain"

    def answer(self, question: str) -> AgentResult:
        """Answer one question. Errors (LLM down, agent stuck) come back in ``result.error``, not as exceptions."""
        run = self.new_run(question)
        recorder = _Recorder(run)
        try:
            reply = self._tools(run, recorder) if self.mode == "tools" else self._loop(run, recorder)
        except GraphRecursionError:
            return run.failed(f"the agent took more than {self.settings.max_tool_steps} steps")
        except Exception as error:  # noqa: BLE001 - one failed question must not stop a comparison
            return run.failed(error)
        return run.finish(reply)

    def fetch(self, query: str) -> list[Hit]:
        return to_hits(self.retriever.invoke(query))

    def _tools(self, run: AgentRun, recorder: _Recorder) -> str:
        def search_documents(query: str) -> str:
            if not query.strip():
                raise ValueError("query must be a non-empty search string.")
            return self.search(run, query)

        tool = StructuredTool.from_function(
            func=search_documents, name=SEARCH_TOOL_NAME, description=SEARCH_TOOL_DESCRIPTION
        )
        agent = create_agent(self.llm, [tool], system_prompt=run.tool_system_prompt())
        # Each step is a model call plus a tool call; +1 for the final answer.
        limit = 2 * self.settings.max_tool_steps + 1
        result = agent.invoke(
            {"messages": [{"role": "user", "content": run.question}]},
            config={"callbacks": [recorder], "recursion_limit": limit},
        )
        return _text(result["messages"][-1].content)

    def _loop(self, run: AgentRun, recorder: _Recorder) -> str:
        settings = run.settings

        def chat(messages: list[dict[str, str]], max_tokens: int) -> str:
            reply = self.llm.bind(max_tokens=max_tokens).invoke(messages, config={"callbacks": [recorder]})
            return _text(reply.content)

        def rewrite(state: _LoopState) -> _LoopState:
            return {"query": run.query_from_rewrite(chat(run.rewrite_messages(), settings.rewrite_tokens))}

        def retrieve(state: _LoopState) -> _LoopState:
            self.search(run, state["query"])
            return {"query": ""}

        def judge(state: _LoopState) -> _LoopState:
            reply = chat(run.decide_messages(), settings.answer_tokens)
            query = run.next_query(reply)
            return {"query": query} if query else {"query": "", "reply": reply}

        def answer(state: _LoopState) -> _LoopState:
            return {"reply": chat(run.answer_messages(), settings.answer_tokens)}

        graph = StateGraph(_LoopState)
        for name, node in (("rewrite", rewrite), ("retrieve", retrieve), ("judge", judge), ("answer", answer)):
            graph.add_node(name, node)
        graph.add_edge(START, "rewrite")
        graph.add_edge("rewrite", "retrieve")
        graph.add_conditional_edges("retrieve", lambda _: "judge" if run.searches_left > 0 else "answer")
        graph.add_conditional_edges("judge", lambda state: "retrieve" if state.get("query") else END)
        graph.add_edge("answer", END)
        final = graph.compile().invoke({}, config={"recursion_limit": 4 * settings.max_searches + 4})
        return final.get("reply", "")


def _text(content: Any) -> str:
    """A message's text, also when the content is a list of blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return "" if content is None else str(content)
