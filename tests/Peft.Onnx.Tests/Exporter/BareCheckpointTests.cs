using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Xunit;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>
/// A checkpoint saved from the bare base model (GPT2Model: "h.0.attn..." instead of "transformer.h.0.attn...") loads
/// for training and exports, both through the one checkpoint-name resolver, and gives what the prefixed one gives.
/// </summary>
public sealed class BareCheckpointTests
{
    [Theory]
    [InlineData("gpt2", "lora")]
    [InlineData("bloom", "ia3")]
    public void Checkpoint_without_the_base_model_prefix_exports_as_the_prefixed_one(string arch, string method)
    {
        var bare = Paths.TempDir("peft-onnx-bare");
        string? fromBare = null, fromPrefixed = null;
        try
        {
            var source = Paths.Case(arch, "base_model");
            using (var file = SafeTensorsFile.Open(Path.Combine(source, CheckpointTensors.SingleFile)))
            {
                Assert.Contains(file.Names, n => CheckpointNames.WithoutBaseModelPrefix(n) is not null);
                SafeTensorsWriter.Write(Path.Combine(bare, CheckpointTensors.SingleFile),
                    file.Names.Select(n => TensorData.FromFloat32(CheckpointNames.WithoutBaseModelPrefix(n) ?? n, file[n].Shape, file.ReadFloat32(n))).ToList());
            }
            foreach (var f in Directory.EnumerateFiles(source).Where(f => !f.EndsWith(".safetensors", StringComparison.Ordinal)))
                File.Copy(f, Path.Combine(bare, Path.GetFileName(f)));

            using (var loaded = ModelLoader.Load(bare)) Assert.Equal(arch == "gpt2" ? "GPT2LMHeadModel" : "BloomForCausalLM", loaded.Architecture.ClassName);

            fromBare = TempExports.FreshPath();
            OnnxExport.Export(bare, Paths.Case(arch, method + "/adapter"), fromBare, new ExportOptions());
            fromPrefixed = TempExports.Adapted(arch, method, new ExportOptions());
            Assert.Equal(AdapterExportParity.FixtureLogits(arch, fromPrefixed), AdapterExportParity.FixtureLogits(arch, fromBare));
        }
        finally
        {
            Directory.Delete(bare, true);
            foreach (var d in new[] { fromBare, fromPrefixed })
                if (d is not null && Directory.Exists(d)) Directory.Delete(d, true);
        }
    }
}
