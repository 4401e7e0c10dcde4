"""Retrieval-augmented generation with LangChain over a hybrid table.

Run:  python examples/langchain_rag.py [--db PATH] [--question TEXT] [--topic TOPIC]

Builds a `HybridVectorStore` from a handful of LangChain Documents (embedded offline by the
packaged all-MiniLM-L6-v2, in int8 ONNX by default), retrieves with hybrid search (BM25 +
vectors, fused by RRF) restricted by a metadata filter, and "stuffs" the retrieved passages
into a ChatPromptTemplate with a small LCEL chain. If an OpenAI-compatible endpoint is
configured (OPENAI_BASE_URL and OPENAI_API_KEY; OPENAI_MODEL picks the model) the prompt is
sent to its /chat/completions with httpx; otherwise the prompt is printed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never ask a model hub

import pyarrow as pa  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.prompt_values import PromptValue  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402
from langchain_core.runnables import RunnableLambda, RunnablePassthrough  # noqa: E402

from hybrid.embedders import Embedder, HashingEmbedder, OnnxMiniLMEmbedder, SentenceTransformerEmbedder  # noqa: E402
from hybrid.integrations.langchain import HybridVectorStore  # noqa: E402

DOCS = [
    Document(
        id="api-keys",
        page_content="Rotate API keys every 90 days: issue a new key, deploy it everywhere, then revoke the old one.",
        metadata={"topic": "security", "year": 2023, "source": {"title": "Key rotation", "page": 3}},
    ),
    Document(
        id="passwords",
        page_content="Store passwords with a slow salted hash such as Argon2 or bcrypt, never in plain text.",
        metadata={"topic": "security", "year": 2021, "source": {"title": "Password storage", "page": 1}},
    ),
    Document(
        id="tls",
        page_content="TLS certificates expire; automate renewal and alert well before the expiry date.",
        metadata={"topic": "security", "year": 2022, "source": {"title": "Certificates", "page": 7}},
    ),
    Document(
        id="key-value",
        page_content="A key-value store maps each key to one value; rotate the log files when they grow large.",
        metadata={"topic": "databases", "year": 2020, "source": {"title": "Storage engines", "page": 12}},
    ),
    Document(
        id="wal",
        page_content="A write-ahead log records changes before they reach the data files, so a crash loses nothing.",
        metadata={"topic": "databases", "year": 2020, "source": {"title": "Durability", "page": 4}},
    ),
    Document(
        id="sourdough",
        page_content="Feed a sourdough starter flour and water daily until it doubles within a few hours.",
        metadata={"topic": "cooking", "year": 2022, "source": {"title": "Bread", "page": 2}},
    ),
]

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer the question using only the numbered context passages; cite them like [1]."),
        ("human", "Context:\n{context}\n\nQuestion: {question}"),
    ]
)


def make_embedder(name: str) -> Embedder:
    if name == "minilm":
        return SentenceTransformerEmbedder()  # all-MiniLM-L6-v2 on torch
    if name == "hashing":
        return HashingEmbedder(dim=256)  # no model at all: keywords only, for a quick look
    return OnnxMiniLMEmbedder()  # the same MiniLM in int8 ONNX: loads in about a second


def stuff(docs: list[Document]) -> str:
    """The "stuff" step: every retrieved passage, numbered, in one context string."""
    return "\n".join(
        f"[{i}] {d.page_content} ({d.metadata['source']['title']}, {d.metadata['year']})" for i, d in enumerate(docs, 1)
    )


def generate(prompt: PromptValue) -> str:
    """Send the prompt to an OpenAI-compatible /chat/completions endpoint (httpx, no SDK)."""
    import httpx

    roles = {"system": "system", "human": "user", "ai": "assistant"}
    messages = [{"role": roles.get(m.type, "user"), "content": str(m.content)} for m in prompt.to_messages()]
    base = os.environ["OPENAI_BASE_URL"].rstrip("/")
    response = httpx.post(
        f"{base}/chat/completions",
        headers={"Authorization": f"Bearer {os.environ['OPENAI_API_KEY']}"},
        json={"model": os.environ.get("OPENAI_MODEL", "gpt-4o-mini"), "messages": messages, "temperature": 0},
        timeout=60,
    )
    response.raise_for_status()
    answer: str = response.json()["choices"][0]["message"]["content"]
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=None, help="database folder to keep (default: a temporary one, removed)")
    parser.add_argument("--question", default="How often should API keys be rotated?")
    parser.add_argument("--topic", default="security", help="only retrieve documents of this topic")
    parser.add_argument("--k", type=int, default=2, help="passages to retrieve")
    parser.add_argument("--embedder", choices=["onnx", "minilm", "hashing"], default="onnx")
    args = parser.parse_args()
    if args.db is not None:
        run(args, args.db)
        return
    with tempfile.TemporaryDirectory(prefix="hybrid-langchain-") as scratch:
        run(args, scratch)


def run(args: argparse.Namespace, path: str) -> None:
    """Store, retrieve and prompt, with the database in the folder `path`."""
    store = HybridVectorStore.from_documents(
        DOCS,
        make_embedder(args.embedder),
        uri=path,
        table_name="rag",
        mode="overwrite",
        metadata_columns={"topic": pa.string(), "year": pa.int64()},  # typed columns for SQL filters
    )
    print(f"stored {store.table.count_rows()} documents in {store.table.path}")

    retriever = store.as_retriever(search_type="hybrid", search_kwargs={"k": args.k, "filter": {"topic": args.topic}})
    print(f"\nhybrid retrieval for {args.question!r}, topic = {args.topic!r}:")
    for doc in retriever.invoke(args.question):
        print(f"  {doc.id:<10} {doc.page_content}")

    print("\nthe same question, filtered in SQL (year >= 2022):")
    for doc in store.hybrid_search(args.question, k=args.k, filter="year >= 2022"):
        print(f"  {doc.id:<10} ({doc.metadata['year']}) {doc.page_content}")

    chain: Any = {"context": retriever | RunnableLambda(stuff), "question": RunnablePassthrough()} | PROMPT
    if os.environ.get("OPENAI_BASE_URL") and os.environ.get("OPENAI_API_KEY"):
        print("\nanswer:\n" + (chain | RunnableLambda(generate)).invoke(args.question))
    else:
        prompt = chain.invoke(args.question)
        print("\nno OpenAI-compatible endpoint configured (set OPENAI_BASE_URL and OPENAI_API_KEY); the prompt:\n")
        for message in prompt.to_messages():
            print(f"--- {message.type}\n{message.content}")


if __name__ == "__main__":
    main()
