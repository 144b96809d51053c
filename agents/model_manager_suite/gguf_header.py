"""Minimal, fast GGUF header reader.

Reads the magic, version, tensor count, the key/value metadata and the tensor infos of a GGUF file
through ``mmap`` without materialising large arrays (``tokenizer.ggml.tokens`` of a 262k-entry vocabulary
is skipped by walking the string lengths; fixed-size arrays are skipped with one addition). From the
tensor infos it computes the parameter count and checks that the file is long enough to hold the tensor
data, so a truncated download is reported instead of crashing the loader later.

Anything that is not a readable GGUF file raises ``GGUFError`` with a human ``reason``.
"""
from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.errors import BadRequest

MAGIC = b"GGUF"
SMALL_ARRAY = 64          # arrays up to this many elements are kept in ``metadata``
MAX_DIMS = 8

# GGUF value types: id -> (struct format or None for variable size)
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_TYPE_NAMES = {0: "uint8", 1: "int8", 2: "uint16", 3: "int16", 4: "uint32", 5: "int32", 6: "float32", 7: "bool",
               8: "string", 9: "array", 10: "uint64", 11: "int64", 12: "float64"}

# ggml tensor type id -> (name, block size in elements, bytes per block)
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
}

# general.file_type (llama_ftype) -> quantization name
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
    19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
    26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
    36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0",
}


class GGUFError(BadRequest):
    """The file is not a usable GGUF file; ``reason`` says why."""

    def __init__(self, reason: str, path: str | os.PathLike | None = None):
        where = f"{path}: " if path is not None else ""
        super().__init__(f"{where}{reason}", details={"reason": reason})
        self.reason = reason
        self.path = str(path) if path is not None else None


@dataclass(frozen=True)
class ArraySummary:
    """A metadata array too large to keep: its element type and length."""

    type: str
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {"array": self.type, "count": self.count}


@dataclass
class GGUFHeader:
    path: str
    file_size: int
    version: int
    tensor_count: int
    kv_count: int
    metadata: dict[str, Any]
    parameter_count: int
    data_offset: int
    data_size: int
    tensor_types: dict[str, int] = field(default_factory=dict)

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    @property
    def name(self) -> str | None:
        value = self.metadata.get("general.name")
        return value if isinstance(value, str) else None

    @property
    def file_type(self) -> int | None:
        value = self.metadata.get("general.file_type")
        return int(value) if isinstance(value, int) else None

    @property
    def quantization(self) -> str | None:
        if self.file_type is not None:
            return FILE_TYPES.get(self.file_type, f"ftype_{self.file_type}")
        if self.tensor_types:  # no file_type key: the most common tensor type
            return max(self.tensor_types.items(), key=lambda kv: kv[1])[0]
        return None

    def arch_value(self, key: str) -> Any:
        """``<architecture>.<key>`` from the metadata, or None."""
        return self.metadata.get(f"{self.architecture}.{key}") if self.architecture else None

    def _arch_int(self, key: str) -> int | None:
        value = self.arch_value(key)
        if isinstance(value, list):  # per-layer arrays (e.g. head_count_kv): take the largest
            value = max(value) if value else None
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def context_length(self) -> int | None:
        return self._arch_int("context_length")

    @property
    def embedding_length(self) -> int | None:
        return self._arch_int("embedding_length")

    @property
    def block_count(self) -> int | None:
        return self._arch_int("block_count")

    @property
    def head_count(self) -> int | None:
        return self._arch_int("attention.head_count")

    @property
    def head_count_kv(self) -> int | None:
        return self._arch_int("attention.head_count_kv") or self.head_count

    @property
    def vocab_size(self) -> int | None:
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, ArraySummary):
            return tokens.count
        if isinstance(tokens, list):
            return len(tokens)
        return self._arch_int("vocab_size")

    def kv_dims(self) -> tuple[int, int]:
        """(n_embd_k_gqa, n_embd_v_gqa): K and V widths per layer per token."""
        n_embd, n_head = self.embedding_length or 0, self.head_count or 0
        default_head = n_embd // n_head if n_head else 0
        key_len = self._arch_int("attention.key_length") or default_head
        value_len = self._arch_int("attention.value_length") or default_head
        n_kv = self.head_count_kv or 0
        return key_len * n_kv, value_len * n_kv

    def kv_cache_bytes(self, n_ctx: int, bytes_per_element: float = 2.0) -> int:
        """Size of the K+V cache for ``n_ctx`` tokens (llama.cpp default cache type is f16)."""
        k_dim, v_dim = self.kv_dims()
        return int((self.block_count or 0) * n_ctx * (k_dim + v_dim) * bytes_per_element)

    def summary(self) -> dict[str, Any]:
        """JSON-able description (small metadata values only)."""
        meta = {}
        for key, value in self.metadata.items():
            if isinstance(value, ArraySummary):
                meta[key] = value.to_dict()
            elif isinstance(value, str) and len(value) > 256:
                meta[key] = value[:256] + "..."
            else:
                meta[key] = value
        return {
            "version": self.version, "tensor_count": self.tensor_count, "kv_count": self.kv_count,
            "architecture": self.architecture, "name": self.name, "file_type": self.file_type,
            "quantization": self.quantization, "context_length": self.context_length,
            "embedding_length": self.embedding_length, "block_count": self.block_count,
            "head_count": self.head_count, "head_count_kv": self.head_count_kv, "vocab_size": self.vocab_size,
            "parameter_count": self.parameter_count, "data_offset": self.data_offset, "data_size": self.data_size,
            "tensor_types": dict(self.tensor_types), "metadata": meta,
        }


class _Cursor:
    """Bounds-checked little-endian reads over a buffer."""

    def __init__(self, buf: Any, size: int, path: str):
        self.buf, self.size, self.pos, self.path = buf, size, 0, path

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise GGUFError(f"truncated: {what} at offset {self.pos} needs {n} bytes, file has {self.size}", self.path)

    def unpack(self, fmt: str, what: str) -> Any:
        n = struct.calcsize(fmt)
        self.need(n, what)
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += n
        return value

    def string(self, what: str, len_fmt: str) -> str:
        length = self.unpack(len_fmt, what)
        self.need(length, what)
        raw = bytes(self.buf[self.pos:self.pos + length])
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.pos += n


def read_header(path: str | os.PathLike) -> GGUFHeader:
    """Parse the header of a GGUF file; raise ``GGUFError`` if it is not a readable GGUF file."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < 24:
                magic = fh.read(4)
                if magic != MAGIC:
                    raise GGUFError(f"not a GGUF file (magic {magic!r})", path)
                raise GGUFError(f"truncated: {size} bytes, header needs at least 24", path)
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(_Cursor(buf, size, str(path)), size)
    except OSError as exc:
        raise GGUFError(f"cannot read file: {exc.strerror or exc}", path) from exc


def _parse(cur: _Cursor, size: int) -> GGUFHeader:
    magic = bytes(cur.buf[0:4])
    if magic != MAGIC:
        raise GGUFError(f"not a GGUF file (magic {magic!r})", cur.path)
    cur.pos = 4
    version = cur.unpack("<I", "version")
    if version not in (1, 2, 3):
        raise GGUFError(f"unsupported GGUF version {version}", cur.path)
    count_fmt = "<I" if version == 1 else "<Q"
    tensor_count = cur.unpack(count_fmt, "tensor count")
    kv_count = cur.unpack(count_fmt, "metadata count")
    if tensor_count > size // 8 or kv_count > size // 8:
        raise GGUFError(f"implausible counts (tensors {tensor_count}, metadata {kv_count})", cur.path)
    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key = cur.string("metadata key", count_fmt)
        vtype = cur.unpack("<I", f"type of {key}")
        metadata[key] = _read_value(cur, vtype, key, count_fmt)
    params, types, data_end = _read_tensor_infos(cur, tensor_count, count_fmt)
    alignment = metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise GGUFError(f"invalid general.alignment {alignment!r}", cur.path)
    data_offset = (cur.pos + alignment - 1) // alignment * alignment
    if tensor_count and data_offset + data_end > size:
        raise GGUFError(f"truncated: tensor data needs {data_offset + data_end} bytes, file has {size}", cur.path)
    return GGUFHeader(path=cur.path, file_size=size, version=version, tensor_count=tensor_count,
                      kv_count=kv_count, metadata=metadata, parameter_count=params, data_offset=data_offset,
                      data_size=data_end, tensor_types=types)


def _read_value(cur: _Cursor, vtype: int, key: str, count_fmt: str) -> Any:
    if vtype in _SCALAR:
        return cur.unpack(_SCALAR[vtype], key)
    if vtype == _STRING:
        return cur.string(key, count_fmt)
    if vtype == _ARRAY:
        etype = cur.unpack("<I", f"element type of {key}")
        count = cur.unpack(count_fmt, f"length of {key}")
        if count <= SMALL_ARRAY and etype != _ARRAY:
            return [_read_value(cur, etype, key, count_fmt) for _ in range(count)]
        _skip_array(cur, etype, count, key, count_fmt)
        return ArraySummary(_TYPE_NAMES.get(etype, str(etype)), count)
    raise GGUFError(f"unknown metadata value type {vtype} for key {key!r}", cur.path)


def _skip_array(cur: _Cursor, etype: int, count: int, key: str, count_fmt: str) -> None:
    if etype in _SCALAR:
        cur.skip(count * struct.calcsize(_SCALAR[etype]), key)
    elif etype == _STRING:
        _skip_strings(cur, count, key, count_fmt)
    elif etype == _ARRAY:
        for _ in range(count):
            inner = cur.unpack("<I", key)
            inner_count = cur.unpack(count_fmt, key)
            _skip_array(cur, inner, inner_count, key, count_fmt)
    else:
        raise GGUFError(f"unknown array element type {etype} for key {key!r}", cur.path)


def _skip_strings(cur: _Cursor, count: int, key: str, count_fmt: str) -> None:
    """Walk ``count`` length-prefixed strings: one unpack per entry, no decoding."""
    width = struct.calcsize(count_fmt)
    unpack_from, buf, size, pos = struct.unpack_from, cur.buf, cur.size, cur.pos
    if count * width > size - pos:
        raise GGUFError(f"truncated: array {key!r} of {count} strings does not fit in the file", cur.path)
    for _ in range(count):
        if pos + width > size:
            raise GGUFError(f"truncated: array {key!r} runs past the end of the file", cur.path)
        pos += width + unpack_from(count_fmt, buf, pos)[0]
    if pos > size:
        raise GGUFError(f"truncated: array {key!r} runs past the end of the file", cur.path)
    cur.pos = pos


def _read_tensor_infos(cur: _Cursor, count: int, count_fmt: str) -> tuple[int, dict[str, int], int]:
    """Return (parameter count, {type name: tensors}, end of tensor data relative to the data section)."""
    params, data_end = 0, 0
    types: dict[str, int] = {}
    for index in range(count):
        name = cur.string(f"name of tensor {index}", count_fmt)
        n_dims = cur.unpack("<I", f"dims of {name}")
        if n_dims > MAX_DIMS:
            raise GGUFError(f"tensor {name!r} has {n_dims} dimensions", cur.path)
        dim_fmt = f"<{n_dims}{count_fmt[-1]}"
        cur.need(struct.calcsize(dim_fmt), f"shape of {name}")
        dims = struct.unpack_from(dim_fmt, cur.buf, cur.pos)
        cur.pos += struct.calcsize(dim_fmt)
        ggml_type = cur.unpack("<I", f"type of {name}")
        offset = cur.unpack("<Q", f"offset of {name}")
        elements = 1
        for dim in dims:
            elements *= dim
        params += elements
        type_name, block, block_bytes = GGML_TYPES.get(ggml_type, (f"type_{ggml_type}", 0, 0))
        types[type_name] = types.get(type_name, 0) + 1
        if block:
            data_end = max(data_end, offset + elements // block * block_bytes)
    return params, types, data_end
