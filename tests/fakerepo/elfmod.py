"""Kernel-module look-alikes: real ELF relocatable objects with a ``.modinfo`` section.

``modinfo`` (kmod) reads a module's fields from the NUL-separated
``key=value`` strings of its ``.modinfo`` section, and ``depmod`` indexes any
ELF relocatable object under ``/lib/modules/KVER``. An object with just that
section (plus an empty symbol table, which depmod expects to find) is
therefore enough for ``modinfo -k KVER -F version nvidia`` to answer exactly as
it does for a module DKMS built. Writing the ELF here, instead of compiling a C
file, keeps the build free of a compiler and byte-reproducible.

>>> blob = kernel_module([("license", "Dual MIT/GPL"), ("name", "nvidia")])
>>> blob[:4] == b"\\x7fELF"
True
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")   # Elf64_Ehdr, 64 bytes
_SHDR = struct.Struct("<IIQQQQIIQQ")         # Elf64_Shdr, 64 bytes
_SYM = struct.Struct("<IBBHQQ")              # Elf64_Sym, 24 bytes

_ET_REL, _EM_X86_64, _EV_CURRENT = 1, 62, 1
_SHT_PROGBITS, _SHT_SYMTAB, _SHT_STRTAB = 1, 2, 3
_SHF_ALLOC = 2


def modinfo_blob(fields: Sequence[tuple[str, str]]) -> bytes:
    """The ``.modinfo`` contents: ``key=value\\0`` for each field, in order."""
    for key, value in fields:
        if "\0" in key or "\0" in value or "=" in key:
            raise ValueError(f"bad modinfo field {key!r}={value!r}")
    return b"".join(f"{k}={v}".encode() + b"\0" for k, v in fields)


def kernel_module(fields: Sequence[tuple[str, str]]) -> bytes:
    """An x86-64 ELF relocatable object whose ``.modinfo`` holds ``fields``."""
    names = ["", ".modinfo", ".symtab", ".strtab", ".shstrtab"]
    shstrtab = b"\0".join(n.encode() for n in names) + b"\0"
    name_off = {n: shstrtab.index(n.encode() + b"\0") if n else 0 for n in names}

    modinfo = modinfo_blob(fields)
    symtab = _SYM.pack(0, 0, 0, 0, 0, 0)     # the mandatory null symbol, nothing exported
    strtab = b"\0"

    # Lay the section contents out after the ELF header, 8-byte aligned.
    body = bytearray()
    offsets: dict[str, int] = {}
    for name, data in ((".modinfo", modinfo), (".symtab", symtab), (".strtab", strtab),
                       (".shstrtab", shstrtab)):
        while (_EHDR.size + len(body)) % 8:
            body.append(0)
        offsets[name] = _EHDR.size + len(body)
        body += data
    while (_EHDR.size + len(body)) % 8:
        body.append(0)
    shoff = _EHDR.size + len(body)

    headers = [
        _SHDR.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        _SHDR.pack(name_off[".modinfo"], _SHT_PROGBITS, _SHF_ALLOC, 0, offsets[".modinfo"],
                   len(modinfo), 0, 0, 1, 0),
        # sh_link: the string table (index 3); sh_info: one past the last local symbol.
        _SHDR.pack(name_off[".symtab"], _SHT_SYMTAB, 0, 0, offsets[".symtab"], len(symtab),
                   3, 1, 8, _SYM.size),
        _SHDR.pack(name_off[".strtab"], _SHT_STRTAB, 0, 0, offsets[".strtab"], len(strtab),
                   0, 0, 1, 0),
        _SHDR.pack(name_off[".shstrtab"], _SHT_STRTAB, 0, 0, offsets[".shstrtab"],
                   len(shstrtab), 0, 0, 1, 0),
    ]
    ident = b"\x7fELF" + bytes([2, 1, _EV_CURRENT, 0]) + bytes(8)   # 64-bit, little endian, SysV
    ehdr = _EHDR.pack(ident, _ET_REL, _EM_X86_64, _EV_CURRENT, 0, 0, shoff, 0, _EHDR.size, 0, 0,
                      _SHDR.size, len(headers), len(headers) - 1)
    return ehdr + bytes(body) + b"".join(headers)
