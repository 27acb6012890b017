"""Compare original and re-written ONNX models field by field with ONNX's own protobuf
classes. The one normalisation: a string field explicitly set to "" counts as absent
(the IR gives both the same meaning; edgepack's proto3-style strings do not keep the
presence bit of an empty string). Exit 1 on any other difference; exit 0 with a note when
the `onnx` package is not installed in this Python."""
import sys

try:
    import onnx
    from google.protobuf.descriptor import FieldDescriptor
except ImportError:
    print("compare_protos: `onnx` not installed in this Python; field comparison skipped")
    sys.exit(0)


def drop_empty_strings(msg):
    for field, value in list(msg.ListFields()):
        repeated = not isinstance(value, (str, bytes)) and hasattr(value, "__len__")
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for m in value if repeated else [value]:
                drop_empty_strings(m)
        elif not repeated and value in ("", b"") and field.containing_oneof is None:
            msg.ClearField(field.name)


bad = 0
n = 0
for line in open(sys.argv[1]):
    orig, rt = line.rstrip("\n").split("\t")
    a = onnx.load(orig, load_external_data=False)
    b = onnx.load(rt, load_external_data=False)
    drop_empty_strings(a)
    drop_empty_strings(b)
    n += 1
    if a != b:
        bad += 1
        print("DIFFERS:", orig)
print(f"compare_protos: {n} models compared field by field, {bad} differ")
sys.exit(1 if bad else 0)
