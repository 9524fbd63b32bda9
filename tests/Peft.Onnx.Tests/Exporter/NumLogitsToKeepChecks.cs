using Peft.Onnx.Exporter.Onnx.Proto;
using Xunit;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>The optional num_logits_to_keep input of decoder-only graphs (values checked by Runtime/LastLogitsTests).</summary>
public static class NumLogitsToKeepChecks
{
    /// <summary>The input is an int64 scalar with a same-named initializer 0 (every position), and logits have their own sequence dim.</summary>
    public static void AssertDefaultsToEveryPosition(ModelProto model)
    {
        var input = model.Graph.Input.Single(i => i.Name == "num_logits_to_keep");
        Assert.Equal(7, input.Type.TensorType.ElemType);   // INT64
        Assert.Empty(input.Type.TensorType.Shape.Dim);
        var initializer = model.Graph.Initializer.Single(t => t.Name == "num_logits_to_keep");
        Assert.Empty(initializer.Dims);
        Assert.Equal(7, initializer.DataType);
        var value = initializer.Int64Data.Count == 1 ? initializer.Int64Data[0] : BitConverter.ToInt64(initializer.RawData.ToByteArray());
        Assert.Equal(0, value);
        var logits = model.Graph.Output.Single(o => o.Name == "logits");
        Assert.Equal("logits_sequence_length", logits.Type.TensorType.Shape.Dim[1].DimParam);
    }
}
