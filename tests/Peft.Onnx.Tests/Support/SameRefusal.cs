using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Trainer.Training;
using Xunit;

namespace Peft.Onnx.Tests.Support;

/// <summary>
/// An adapter the trainer (loading it for inference) and the exporter both refuse with one and the same one-line
/// message naming the adapter, before the export writes anything; the adapter folder is deleted afterwards.
/// </summary>
internal static class SameRefusal
{
    /// <returns>The message both sides gave.</returns>
    public static string Check(string arch, string adapter, string expected)
    {
        var outDir = TempExports.FreshPath();
        try
        {
            var trainer = Assert.Throws<PeftOnnxException>(() => PeftModelSource.FromAdapter(Paths.Case(arch, "base_model"), adapter, out _, inferenceMode: true).Dispose());
            var exporter = Assert.Throws<PeftOnnxException>(() => OnnxExport.Export(Paths.Case(arch, "base_model"), adapter, outDir, new ExportOptions()));
            Assert.Equal(exporter.Message, trainer.Message);
            Assert.Contains(expected, trainer.Message);
            Assert.Contains(adapter, trainer.Message);
            Assert.DoesNotContain('\n', trainer.Message);
            TempExports.AssertNothingWritten(outDir);
            return trainer.Message;
        }
        finally { Directory.Delete(adapter, true); }
    }

    /// <summary>A GPT-2 adapter of <paramref name="peftType"/> (config keys <paramref name="keys"/>, no tensors) refused by the trainer because it selects the Conv1D c_attn, as PEFT refuses it.</summary>
    public static void CheckConv1D(string peftType, string keys, string methodName)
    {
        var dir = Paths.TempDir("peft-onnx-gpt2-conv1d");
        try
        {
            File.WriteAllText(Path.Combine(dir, AdapterFormat.ConfigFile), $$"""{"peft_type": "{{peftType}}", {{keys}}, "task_type": "CAUSAL_LM"}""");
            SafeTensorsWriter.Write(Path.Combine(dir, AdapterFormat.WeightsFile), [], AdapterFormat.WeightsMetadata);
            var ex = Assert.Throws<PeftOnnxException>(() => PeftModelSource.FromAdapter(Paths.Case("gpt2", "base_model"), dir, out _, inferenceMode: true).Dispose());
            Assert.Contains($"selects 'transformer.h.0.attn.c_attn', a transformers Conv1D layer, which PEFT's {methodName} does not support (only nn.Linear layers)", ex.Message);
        }
        finally { Directory.Delete(dir, true); }
    }
}
