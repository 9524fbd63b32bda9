using Google.Protobuf;
using Peft.Onnx.Exporter.Onnx.Proto;
using AttributeType = Peft.Onnx.Exporter.Onnx.Proto.AttributeProto.Types.AttributeType;

namespace Peft.Onnx.Exporter.Onnx;

/// <summary>Typed constructors for node attributes (the type discriminator is always set).</summary>
public static class Attr
{
    public static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeType.Int, I = value };

    public static AttributeProto Float(string name, float value) => new() { Name = name, Type = AttributeType.Float, F = value };

    public static AttributeProto String(string name, string value) =>
        new() { Name = name, Type = AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    public static AttributeProto Floats(string name, params float[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeType.Floats };
        a.Floats.AddRange(values);
        return a;
    }

    /// <summary>A small tensor attribute (e.g. ConstantOfShape's value); stored inline.</summary>
    public static AttributeProto Tensor(string name, InitializerData value)
    {
        var t = new TensorProto { DataType = (int)value.Type, RawData = ByteString.CopyFrom(value.ToArray()) };
        t.Dims.AddRange(value.Dims);
        return new AttributeProto { Name = name, Type = AttributeType.Tensor, T = t };
    }
}
