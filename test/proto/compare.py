#!/usr/bin/python3
"""Compare two FileDescriptorSets (ours vs reference) for wire compatibility.

Usage: compare.py OURS.pb REF.pb [REF_PREFIX=OURS_PREFIX ...]

Both sets are built by test/proto/check.sh with
`protoc --include_imports --descriptor_set_out`. Every message (nested ones
too), enum and service of the reference must exist in ours with identical
wire-relevant shape, and ours must define nothing the reference lacks.

One deliberate exception: proto/loki/push.proto and
proto/prometheus/io/prometheus/client/metrics.proto define a local Timestamp
(logproto.Timestamp, io.prometheus.client.Timestamp) instead of importing
google/protobuf/timestamp.proto (protoc-c would need a generated
timestamp.pb-c.c that libprotobuf-c does not ship). When ours has such local
copies and no google.protobuf.Timestamp, each is paired with it: each local
copy is compared field by field against the reference's
google.protobuf.Timestamp (one comparison per copy), and a field typed
.google.protobuf.Timestamp in the reference matches a field typed with a
local copy in ours.

File names: an item must be defined in the file of the same name in ours
and in the reference (generated C include paths follow it), after mapping
the reference's name with REF_PREFIX=OURS_PREFIX arguments (first match):
check.sh passes prompb/=prometheus/prompb/ and
io/prometheus/=prometheus/io/prometheus/ because lookout keeps the
Prometheus schemas under proto/prometheus/.

Presence: a proto3 `optional` field (synthetic oneof) and a field that is
the only member of a real oneof named `_<field>` (what the Makefile's
rewrite for protoc-c 1.4 produces) are the same on the wire and are treated
as equal.

Prints one line per difference, then `proto: N passed, M failed` where N+M
is the number of messages + enums + services compared. Exit 1 on any
difference, 2 on bad usage or unreadable input.
"""

import sys

try:
    from google.protobuf import descriptor_pb2
except ImportError:
    sys.stderr.write("compare.py: python module google.protobuf is missing "
                     "(Debian: python3-protobuf; run with /usr/bin/python3)\n")
    sys.exit(2)

FDP = descriptor_pb2.FieldDescriptorProto

LOCAL_TS = ("logproto.Timestamp", "io.prometheus.client.Timestamp")
WKT_TS = "google.protobuf.Timestamp"

# Scalar types that proto3 packs by default when repeated.
PACKABLE = {
    FDP.TYPE_DOUBLE, FDP.TYPE_FLOAT, FDP.TYPE_INT64, FDP.TYPE_UINT64,
    FDP.TYPE_INT32, FDP.TYPE_FIXED64, FDP.TYPE_FIXED32, FDP.TYPE_BOOL,
    FDP.TYPE_UINT32, FDP.TYPE_ENUM, FDP.TYPE_SFIXED32, FDP.TYPE_SFIXED64,
    FDP.TYPE_SINT32, FDP.TYPE_SINT64,
}


def type_label(t):
    return FDP.Type.Name(t)[len("TYPE_"):].lower()


def label_label(lab):
    return FDP.Label.Name(lab)[len("LABEL_"):].lower()


def load(path):
    fds = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as f:
        fds.ParseFromString(f.read())
    return fds


def join(scope, name):
    return scope + "." + name if scope else name


def index(fds):
    """Flatten a set into {full_name: (kind, descriptor, file)}."""
    items = {}

    def walk_msg(scope, msg, fd):
        full = join(scope, msg.name)
        items[full] = ("message", msg, fd)
        for nested in msg.nested_type:
            walk_msg(full, nested, fd)
        for en in msg.enum_type:
            items[join(full, en.name)] = ("enum", en, fd)

    for fd in fds.file:
        for msg in fd.message_type:
            walk_msg(fd.package, msg, fd)
        for en in fd.enum_type:
            items[join(fd.package, en.name)] = ("enum", en, fd)
        for svc in fd.service:
            items[join(fd.package, svc.name)] = ("service", svc, fd)
    return items


class Normaliser:
    """Maps our type names onto the reference's (the Timestamp pairing)."""

    def __init__(self, alias):
        self.alias = alias  # {ours_full_name: ref_full_name}

    def type_name(self, name):
        name = name.lstrip(".")
        return self.alias.get(name, name)


def presence(msg, field):
    """'none', 'optional' (explicit presence), or 'oneof <name>'."""
    if not field.HasField("oneof_index"):
        return "none"
    oneof = msg.oneof_decl[field.oneof_index].name
    if field.proto3_optional:
        return "optional"
    members = [f for f in msg.field
               if f.HasField("oneof_index") and f.oneof_index == field.oneof_index]
    if oneof == "_" + field.name and len(members) == 1:
        return "optional"
    return "oneof " + oneof


def real_oneofs(msg):
    names = {presence(msg, f) for f in msg.field}
    return sorted(n[len("oneof "):] for n in names if n.startswith("oneof "))


def packed(field, syntax):
    if field.label != FDP.LABEL_REPEATED or field.type not in PACKABLE:
        return False
    if field.options.HasField("packed"):
        return field.options.packed
    return syntax == "proto3"


def field_shape(msg, field, syntax, norm):
    return {
        "name": field.name,
        "type": type_label(field.type),
        "type_name": norm.type_name(field.type_name) if field.type_name else "",
        "label": label_label(field.label),
        "presence": presence(msg, field),
        "packed": packed(field, syntax),
        "json_name": field.json_name,
        "default": field.default_value,
    }


def syntax_of(fd):
    return fd.syntax or "proto2"


def ranges(rs):
    return sorted((r.start, r.end) for r in rs)


def compare_message(name, ref, ref_fd, ours, ours_fd, norm, out):
    ref_syn, our_syn = syntax_of(ref_fd), syntax_of(ours_fd)
    if ref_syn != our_syn:
        out.append("syntax %s in reference, %s in ours" % (ref_syn, our_syn))
    ref_fields = {f.number: f for f in ref.field}
    our_fields = {f.number: f for f in ours.field}
    for num in sorted(set(ref_fields) | set(our_fields)):
        rf, of = ref_fields.get(num), our_fields.get(num)
        if of is None:
            out.append("field %d '%s' missing in ours" % (num, rf.name))
            continue
        if rf is None:
            out.append("field %d '%s' only in ours" % (num, of.name))
            continue
        rs = field_shape(ref, rf, ref_syn, Normaliser({}))
        os_ = field_shape(ours, of, our_syn, norm)
        for key in rs:
            if rs[key] != os_[key]:
                out.append("field %d '%s': %s %r in reference, %r in ours"
                           % (num, rf.name, key, rs[key], os_[key]))
    # Real oneofs: same names (membership is checked per field above).
    if real_oneofs(ref) != real_oneofs(ours):
        out.append("oneofs %s in reference, %s in ours"
                   % (real_oneofs(ref), real_oneofs(ours)))
    if ranges(ref.reserved_range) != ranges(ours.reserved_range):
        out.append("reserved ranges %s in reference, %s in ours"
                   % (ranges(ref.reserved_range), ranges(ours.reserved_range)))
    if sorted(ref.reserved_name) != sorted(ours.reserved_name):
        out.append("reserved names %s in reference, %s in ours"
                   % (sorted(ref.reserved_name), sorted(ours.reserved_name)))
    if ranges(ref.extension_range) != ranges(ours.extension_range):
        out.append("extension ranges differ")
    ref_map = ref.options.map_entry
    if ref_map != ours.options.map_entry:
        out.append("map_entry %s in reference, %s in ours"
                   % (ref_map, ours.options.map_entry))


def compare_enum(name, ref, ref_fd, ours, ours_fd, norm, out):
    ref_syn, our_syn = syntax_of(ref_fd), syntax_of(ours_fd)
    if ref_syn != our_syn:
        out.append("syntax %s in reference, %s in ours" % (ref_syn, our_syn))
    rv = {v.name: v.number for v in ref.value}
    ov = {v.name: v.number for v in ours.value}
    for vname in sorted(set(rv) | set(ov), key=lambda n: (rv.get(n, ov.get(n)), n)):
        if vname not in ov:
            out.append("value %s = %d missing in ours" % (vname, rv[vname]))
        elif vname not in rv:
            out.append("value %s = %d only in ours" % (vname, ov[vname]))
        elif rv[vname] != ov[vname]:
            out.append("value %s: number %d in reference, %d in ours"
                       % (vname, rv[vname], ov[vname]))
    # proto3 requires the first value to be the zero default.
    if ref.value and ours.value and ref.value[0].name != ours.value[0].name:
        out.append("first (default) value %s in reference, %s in ours"
                   % (ref.value[0].name, ours.value[0].name))
    if ref.options.allow_alias != ours.options.allow_alias:
        out.append("allow_alias differs")
    if ranges(ref.reserved_range) != ranges(ours.reserved_range):
        out.append("reserved ranges %s in reference, %s in ours"
                   % (ranges(ref.reserved_range), ranges(ours.reserved_range)))


def compare_service(name, ref, ref_fd, ours, ours_fd, norm, out):
    rm = {m.name: m for m in ref.method}
    om = {m.name: m for m in ours.method}
    plain = Normaliser({})
    for mname in sorted(set(rm) | set(om)):
        if mname not in om:
            out.append("rpc %s missing in ours" % mname)
            continue
        if mname not in rm:
            out.append("rpc %s only in ours" % mname)
            continue
        r, o = rm[mname], om[mname]
        pairs = [
            ("input", plain.type_name(r.input_type), norm.type_name(o.input_type)),
            ("output", plain.type_name(r.output_type), norm.type_name(o.output_type)),
            ("client_streaming", r.client_streaming, o.client_streaming),
            ("server_streaming", r.server_streaming, o.server_streaming),
        ]
        for what, rv, ov in pairs:
            if rv != ov:
                out.append("rpc %s: %s %r in reference, %r in ours"
                           % (mname, what, rv, ov))


COMPARE = {"message": compare_message, "enum": compare_enum,
           "service": compare_service}


def parse_maps(args):
    """REF_PREFIX=OURS_PREFIX arguments -> [(ref_prefix, ours_prefix)]."""
    maps = []
    for a in args:
        ref_prefix, sep, ours_prefix = a.partition("=")
        if not sep or not ref_prefix:
            raise ValueError(a)
        maps.append((ref_prefix, ours_prefix))
    return maps


def map_file(name, maps):
    for ref_prefix, ours_prefix in maps:
        if name.startswith(ref_prefix):
            return ours_prefix + name[len(ref_prefix):]
    return name


def main(argv):
    usage = "usage: compare.py OURS.pb REF.pb [REF_PREFIX=OURS_PREFIX ...]\n"
    if len(argv) < 3:
        sys.stderr.write(usage)
        return 2
    try:
        maps = parse_maps(argv[3:])
    except ValueError as e:
        sys.stderr.write("compare.py: bad file-name mapping %r\n%s" % (str(e), usage))
        return 2
    try:
        ours_set, ref_set = load(argv[1]), load(argv[2])
    except Exception as e:  # unreadable file or not a descriptor set
        sys.stderr.write("compare.py: cannot read descriptor set: %s\n" % e)
        return 2
    ours, ref = index(ours_set), index(ref_set)

    # ours name -> reference name, for items compared under another name.
    pairs = {}
    if WKT_TS not in ours and WKT_TS in ref:
        for local in LOCAL_TS:
            if local in ours:
                pairs[local] = WKT_TS
                print("note: ours %s is compared as %s (local copy for protoc-c)"
                      % (local, WKT_TS))
    norm = Normaliser(pairs)
    # reference name -> the names in ours compared with it (sorted).
    ref_to_ours = {}
    for oname, rname in sorted(pairs.items()):
        ref_to_ours.setdefault(rname, []).append(oname)

    passed = failed = 0
    for rname in sorted(ref):
        kind, rdesc, rfd = ref[rname]
        for oname in ref_to_ours.get(rname, [rname]):
            if oname not in ours:
                print("FAIL %s %s: missing in ours (reference %s)"
                      % (kind, rname, rfd.name))
                failed += 1
                continue
            okind, odesc, ofd = ours[oname]
            problems = []
            if okind != kind:
                problems.append("is a %s in reference, a %s in ours" % (kind, okind))
            else:
                COMPARE[kind](rname, rdesc, rfd, odesc, ofd, norm, problems)
                # Generated C include paths depend on the file name.
                want = map_file(rfd.name, maps)
                if oname == rname and want != ofd.name:
                    shown = rfd.name if want == rfd.name else "%s (as %s)" % (rfd.name, want)
                    problems.append("defined in %s in reference, %s in ours"
                                    % (shown, ofd.name))
            if problems:
                failed += 1
                label = rname if oname == rname else "%s (ours %s)" % (rname, oname)
                for p in problems:
                    print("FAIL %s %s: %s" % (kind, label, p))
            else:
                passed += 1
    for oname in sorted(ours):
        if oname in pairs or oname in ref:
            continue
        kind, _, ofd = ours[oname]
        print("FAIL %s %s: only in ours (%s), not in reference"
              % (kind, oname, ofd.name))
        failed += 1

    print("proto: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
