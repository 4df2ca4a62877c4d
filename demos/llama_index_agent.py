"""The LlamaIndex agent: a native tool-calling ``FunctionAgent``, or the agentic loop as a LlamaIndex ``Workflow``.

Both search through one LlamaIndex retriever (our embedding over Chroma, or :class:`BM25LlamaIndexRetriever`) with
the agent's query passed through unchanged: the task instruction is added by our embeddings, not by the agent. The
tool is a plain ``FunctionTool`` rather than ``RetrieverTool``, which would rewrite the query. Documents reach the
LLM only as data blocks built by :class:`~demos.core.AgentRun`.

Loop workflow: ``rewrite`` (question -> search query) -> ``retrieve`` -> ``judge`` (the LLM answers with citations
when the evidence suffices, or asks for another search) -> ``retrieve`` ... -> ``answer`` once ``max_searches``
retrievals are spent. A question costs two LLM calls when the first evidence suffices.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from llama_index.core.agent.workflow import AgentInput, AgentOutput, FunctionAgent
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.llms import LLM, ChatMessage
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Event, StartEvent, StopEvent, Workflow, step
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reasonembed_rag.retrieval import BM25Index

from .core import SEARCH_TOOL_DESCRIPTION, SEARCH_TOOL_NAME, AgentResult, AgentRun, AgentSettings, BaseAgent, Hit
from .llm import usage_from_raw

__all__ = ["BM25LlamaIndexRetriever", "LlamaIndexAgent", "SearchArguments"]

T = TypeVar("T")


class BM25LlamaIndexRetriever(BaseRetriever):
    """BM25 (:class:`~reasonembed_rag.retrieval.BM25Index`) as a LlamaIndex retriever; node ids are the corpus ids."""

    def __init__(self, index: BM25Index, *, k: int = 10) -> None:
        super().__init__()
        self.index = index
        self.k = k

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        (ranking,) = self.index.search([query_bundle.query_str], self.k)
        return [
            NodeWithScore(node=TextNode(id_=doc_id, text=self.index.documents[doc_id]), score=score)
            for doc_id, score in ranking
        ]


def to_hits(nodes: Sequence[NodeWithScore]) -> list[Hit]:
    """LlamaIndex results as :class:`~demos.core.Hit` objects."""
    return [Hit(n.node.node_id, n.node.get_content(), float(n.score or 0.0)) for n in nodes]


class SearchArguments(BaseModel):
    """The search tool's arguments, as the LLM sees them."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(description="The search query, passed to the retriever unchanged.")


class _Search(Event):
    query: str


class _Judge(Event):
    pass


class _Answer(Event):
    pass


class _LoopWorkflow(Workflow):
    """The agentic loop for one question (a workflow per question: it holds that question's :class:`AgentRun`)."""

    def __init__(self, agent: LlamaIndexAgent, run: AgentRun, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.agent = agent
        self.run_record = run

    @step
    async def rewrite(self, ev: StartEvent) -> _Search:
        run = self.run_record
        reply = await self.agent.chat(run, run.rewrite_messages(), max_tokens=run.settings.rewrite_tokens)
        return _Search(query=run.query_from_rewrite(reply))

    @step
    async def retrieve(self, ev: _Search) -> _Judge | _Answer:
        self.agent.search(self.run_record, ev.query)
        return _Judge() if self.run_record.searches_left > 0 else _Answer()

    @step
    async def judge(self, ev: _Judge) -> _Search | StopEvent:
        run = self.run_record
        reply = await self.agent.chat(run, run.decide_messages(), max_tokens=run.settings.answer_tokens)
        query = run.next_query(reply)
        return _Search(query=query) if query else StopEvent(result=reply)

    @step
    async def answer(self, ev: _Answer) -> StopEvent:
        run = self.run_record
        reply = await self.agent.chat(run, run.answer_messages(), max_tokens=run.settings.answer_tokens)
        return StopEvent(result=reply)


class LlamaIndexAgent(BaseAgent):
    """Answers questions with a LlamaIndex retriever and LLM.

    Args:
        retriever: Any LlamaIndex retriever; it should return at least ``settings.depth`` nodes.
        llm: A LlamaIndex LLM (a function-calling one for ``mode="tools"``), e.g. :func:`demos.llm.llama_index_llm`.
        mode: ``tools`` (``FunctionAgent``) or ``loop`` (the workflow).
        settings: Limits and prompt settings.
        timeout: Seconds a question may take before the workflow gives up.

    Example:
        >>> agent = LlamaIndexAgent(store.llama_index_retriever(k=10), llm, mode="loop")  # doctest: +SKIP
        >>> agent.answer("What is the remainder of 3^100 divided by 7?").final_answer  # doctest: +SKIP
        '4'
    """

    framework = "llamaindex"

    def __init__(
        self,
        retriever: BaseRetriever,
        llm: LLM,
        *,
        mode: str = "loop",
        settings: AgentSettings | None = None,
        timeout: float | None = 600.0,
    ) -> None:
        super().__init__(retriever, llm, mode=mode, settings=settings)
        if mode == "tools" and not llm.metadata.is_function_calling_model:
            raise ValueError(
                f"mode='tools' needs a function-calling LlamaIndex LLM, got {type(llm).__name__} without "
                "is_function_calling_model; use mode='loop' or build it with llama_index_llm(function_calling=True)."
            )
        self.timeout = timeout

    def answer(self, question: str) -> AgentResult:
        """Answer one question (blocking; use :meth:`aanswer` inside an event loop)."""
        return _run_sync(self.aanswer(question))

    async def aanswer(self, question: str) -> AgentResult:
        """Answer one question. Errors (LLM down, agent stuck) come back in ``result.error``, not as exceptions."""
        run = self.new_run(question)
        try:
            reply = await (self._tools(run) if self.mode == "tools" else self._loop(run))
        except Exception as error:  # noqa: BLE001 - one failed question must not stop a comparison
            return run.failed(error)
        return run.finish(reply)

    def fetch(self, query: str) -> list[Hit]:
        return to_hits(self.retriever.retrieve(query))

    async def chat(self, run: AgentRun, messages: Sequence[dict[str, str]], *, max_tokens: int) -> str:
        """One LLM call of the loop, capped at ``max_tokens``, recorded in ``run``."""
        llm = self.llm
        if "max_tokens" in type(llm).model_fields:
            llm = llm.model_copy(update={"max_tokens": max_tokens})
        chat_messages = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]
        response = await llm.achat(chat_messages)
        run.record_llm(messages, **usage_from_raw(response.raw))
        return response.message.content or ""

    # ------------------------------------------------------------------------------------------- the two modes

    async def _loop(self, run: AgentRun) -> str:
        workflow = _LoopWorkflow(self, run, timeout=self.timeout)
        return str(await workflow.run())

    async def _tools(self, run: AgentRun) -> str:
        def search_documents(**arguments: Any) -> str:
            # LlamaIndex calls tools with the model's arguments as they are: check them here, so that a bad call
            # comes back to the model as an error that says what to send.
            try:
                query = SearchArguments.model_validate(arguments).query
            except ValidationError as error:
                raise ValueError(
                    f"Bad arguments {arguments!r} for {SEARCH_TOOL_NAME}: call it with "
                    f'{{"query": "<search text>"}}. ({error.error_count()} errors: {error.errors()[0]["msg"]})'
                ) from None
            if not query.strip():
                raise ValueError(f'{SEARCH_TOOL_NAME} needs a non-empty "query" string.')
            return self.search(run, query)

        tool = FunctionTool.from_defaults(
            fn=search_documents,
            name=SEARCH_TOOL_NAME,
            description=SEARCH_TOOL_DESCRIPTION,
            fn_schema=SearchArguments,
        )
        agent = FunctionAgent(
            tools=[tool],
            llm=self.llm,
            system_prompt=run.tool_system_prompt(),
            streaming=False,
            timeout=self.timeout,
        )
        handler = agent.run(
            user_msg=run.question, max_iterations=self.settings.max_tool_steps, early_stopping_method="generate"
        )
        sent: list[ChatMessage] = []
        async for event in handler.stream_events():
            if isinstance(event, AgentInput):
                sent = list(event.input)
            elif isinstance(event, AgentOutput):
                run.record_llm(sent, **usage_from_raw(event.raw))
        output: AgentOutput = await handler
        return str(output.response.content or "")


def _run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, also when called from code that already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
