using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Passes;
using Peft.Onnx.Exporter.Quantization;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>
/// The loss `forward --onnx` reports for causal prompt-tuning and p-tuning exports equals PEFT's, whose labels get
/// num_virtual_tokens -100s in front so that the last virtual token scores the first real label: on adapters of other
/// shapes and lengths than the fixtures' (against the adapted TorchSharp model, which matches PEFT on the fixtures),
/// with the stored logits computed by the quantized base when the export quantizes; and the compiled AdaLoRA model's loss.
/// </summary>
public class SoftPromptLossTests(ITestOutputHelper output)
{
    /// <summary>
    /// A batch of another shape than the fixtures': 3 rows of 7, one right-padded (labels -100 there), one whose first
    /// label is -100 (no virtual-token term for it).
    /// </summary>
    private static ForwardBatch Batch(int vocab)
    {
        var random = new Random(11);
        long[] ids = Enumerable.Range(0, 21).Select(_ => (long)random.Next(3, vocab)).ToArray();
        long[] mask = [.. Enumerable.Repeat(1L, 7), 1, 1, 1, 1, 1, 0, 0, .. Enumerable.Repeat(1L, 7)];
        var labels = ids.Select((id, i) => mask[i] == 0 ? LabelIds.Ignore : id).ToArray();
        labels[14] = LabelIds.Ignore;
        return new ForwardBatch(ids, mask, [3, 7], labels, [3, 7]);
    }

    [Theory]
    [InlineData("bloom", "prompt_tuning", 1)]
    [InlineData("gpt2", "p_tuning", 3)]
    [InlineData("opt", "prompt_tuning", 5)]
    [InlineData("llama", "p_tuning", 2)]
    [InlineData("llama_gqa", "prompt_tuning", 4)]
    public void Export_loss_equals_the_adapted_models_on_other_shapes(string arch, string method, int virtualTokens)
    {
        var baseDir = BaseDir(arch);
        AdapterConfig config = method == "prompt_tuning"
            ? new PromptTuningConfig { NumVirtualTokens = virtualTokens, TaskType = "CAUSAL_LM" }
            : new PromptEncoderConfig { NumVirtualTokens = virtualTokens, TaskType = "CAUSAL_LM", EncoderHiddenSize = 24 };
        var adapterDir = Paths.TempDir("peft-onnx-soft-loss");
        var onnxDir = TempExports.FreshPath();
        try
        {
            float expected;
            var batch = Batch(ModelConfig.Load(baseDir).Dimensions.VocabSize);
            using (var model = PeftModel.Create(ModelLoader.Load(baseDir), config, seed: virtualTokens))
            {
                model.Save(adapterDir);
                using var scope = NewDisposeScope();
                using var noGrad = no_grad();
                var result = model.Forward(new CausalLmInput(tensor(batch.InputIds, batch.Shape), tensor(batch.AttentionMask, batch.Shape),
                    Labels: tensor(batch.Labels!, batch.LabelShape!)));
                expected = result.Loss!.item<float>();
            }
            OnnxExport.Export(baseDir, adapterDir, onnxDir, new ExportOptions());
            var actual = OnnxForward.Run(onnxDir, batch, "batch").Loss!.Value;

            using var runner = CausalLmForward.Open(Path.Combine(onnxDir, CausalLmContract.ModelFile));
            var realOnly = MeanCrossEntropy.Of(runner.Logits(batch.InputIds, batch.AttentionMask, 3), runner.VocabSize, batch.Labels!, shift: true, 3);
            output.WriteLine($"{arch}/{method} nv {virtualTokens}: adapted {expected}, ONNX {actual}, real tokens alone {realOnly}");
            Tolerance.AssertLoss(expected, actual, $"{arch}/{method} nv {virtualTokens} ONNX loss");
            Assert.True(Math.Abs(realOnly - expected) > 1e-3, "the virtual token's term must matter on this batch");
        }
        finally
        {
            Directory.Delete(adapterDir, true);
            if (Directory.Exists(onnxDir)) Directory.Delete(onnxDir, true);
        }
    }

    /// <summary>
    /// A prompt whose rows are word-embedding rows of token ids v: its last virtual token's logits are the base model's
    /// logits after v. With --quantize they are the quantized base's (the model that is served), not the float one's.
    /// </summary>
    [Fact]
    public void Quantized_export_stores_the_quantized_bases_logits()
    {
        const string arch = "bloom";
        var baseDir = BaseDir(arch);
        var config = ModelConfig.Load(baseDir);
        long[] ids = [17, 250, 3, 911];
        var adapterDir = Paths.TempDir("peft-onnx-soft-quant");
        var quantization = new ExportOptions { Quantize = new WeightQuantization(new QuantizationFormat(4)) };
        var (baked, quantBase, floatBase) = (TempExports.FreshPath(), TempExports.FreshPath(), TempExports.FreshPath());
        try
        {
            WriteEmbeddingRowsAdapter(baseDir, config, ids, adapterDir);
            OnnxExport.Export(baseDir, adapterDir, baked, quantization);
            OnnxExport.ExportBase(baseDir, quantBase, quantization);
            OnnxExport.ExportBase(baseDir, floatBase, new ExportOptions());
            int vocab = config.Dimensions.VocabSize;
            var stored = VirtualTokenLogits.Load(baked, vocab)!;
            var quantized = LastLogits(quantBase, ids, vocab);
            var fp32 = LastLogits(floatBase, ids, vocab);
            var toQuantized = stored.Zip(quantized, (a, b) => Math.Abs(a - b)).Max();
            var toFloat = stored.Zip(fp32, (a, b) => Math.Abs(a - b)).Max();
            output.WriteLine($"stored vs quantized base {toQuantized:g3}, vs float base {toFloat:g3}");
            Tolerance.AssertLogits(quantized, stored, vocab, null, "stored virtual-token logits vs the quantized base");
            Assert.True(toFloat > 100 * Math.Max(toQuantized, 1e-6), $"int4 should move the logits: {toFloat} vs {toQuantized}");
        }
        finally
        {
            foreach (var d in new[] { adapterDir, baked, quantBase, floatBase })
                if (Directory.Exists(d)) Directory.Delete(d, true);
        }
    }

    /// <summary>
    /// AdaLoRA's loss (`forward --adapter`) includes its orthogonal regulariser, which the compiled model cannot know:
    /// the merged export's loss is loss_merged, PEFT's loss of merge_and_unload().
    /// </summary>
    [Fact]
    public void Adalora_export_loss_is_loss_merged()
    {
        var caseDir = Paths.CurrentCase("bloom", "adalora");
        var onnxDir = TempExports.FreshPath();
        try
        {
            OnnxExport.Export(BaseDir("bloom"), Path.Combine(caseDir, "adapter"), onnxDir, new ExportOptions());
            var inputs = Path.Combine(Paths.Case("bloom"), "inputs.safetensors");
            var loss = OnnxForward.Run(onnxDir, ForwardBatch.Read(inputs), inputs).Loss!.Value;
            using var expected = SafeTensorsFile.Open(Path.Combine(caseDir, "reference.safetensors"));
            var (peftLoss, merged) = (expected.ReadFloat32("loss")[0], expected.ReadFloat32("loss_merged")[0]);
            Tolerance.AssertLoss(merged, loss, "bloom/adalora ONNX loss vs loss_merged");
            var regulariser = Reference.MetaAt(caseDir).GetProperty("checks").GetProperty("loss_minus_loss_merged").GetDouble();
            Assert.True(Math.Abs(peftLoss - loss - regulariser) < 1e-4 && regulariser > 1e-3, $"loss {peftLoss} - ONNX {loss} vs regulariser {regulariser}");
        }
        finally { if (Directory.Exists(onnxDir)) Directory.Delete(onnxDir, true); }
    }

    /// <summary>As a user runs it: `export` then `forward --onnx` on a causal p-tuning case writes PEFT's loss (the fixture's).</summary>
    [Fact]
    public void Cli_forward_onnx_of_a_p_tuning_export_writes_pefts_loss()
    {
        var dir = TempExports.FreshPath();
        var outFile = Path.Combine(Path.GetTempPath(), $"peft-onnx-forward-{Guid.NewGuid():N}.safetensors");
        try
        {
            var export = CliRunner.Run("export", "--base", Paths.Case("opt", "base_model"), "--adapter", Paths.Case("opt", "p_tuning_lstm/adapter"), "--out", dir);
            Assert.Equal(0, export.ExitCode);
            Assert.True(File.Exists(Path.Combine(dir, CausalLmContract.VirtualTokenLogitsFile)));
            var forward = CliRunner.Run("forward", "--onnx", dir, "--inputs", Path.Combine(Paths.Case("opt"), "inputs.safetensors"), "--out", outFile, "--device", "cpu");
            output.WriteLine(forward.Stderr);
            Assert.Equal(0, forward.ExitCode);
            using var written = SafeTensorsFile.Open(outFile);
            Tolerance.AssertLoss(Reference.Meta("opt", "p_tuning_lstm").GetProperty("loss").GetDouble(), written.ReadFloat32("loss")[0], "forward --onnx loss");
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
            File.Delete(outFile);
        }
    }

    [Fact]
    public void Leading_logits_score_each_rows_first_label()
    {
        // vocab 2; row 0: real logits (0, 0) at t = 0, 1; labels [1, 0]; leading logits (0, ln 3): -ln(3/4) for label 1
        float[] logits = [0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f];
        float[] leading = [0f, MathF.Log(3f)];
        long[] labels = [1, 0, -100, 1];
        // terms: row 0 leading (label 1) -ln 0.75, row 0 t = 0 (label 0) ln 2; row 1 leading ignored, t = 0 (label 1) ln 2
        var expected = (-Math.Log(0.75) + 2 * Math.Log(2)) / 3;
        Assert.Equal(expected, MeanCrossEntropy.Of(logits, 2, labels, shift: true, batch: 2, leading), 6);
        Assert.Equal(Math.Log(2), MeanCrossEntropy.Of(logits, 2, labels, shift: true, batch: 2), 6);
        Assert.Throws<ArgumentException>(() => MeanCrossEntropy.Of(logits, 2, labels, shift: false, batch: 2, leading));
    }

    [Fact]
    public void A_stored_logits_file_of_the_wrong_vocabulary_is_refused_naming_it()
    {
        var dir = Paths.TempDir("peft-onnx-soft-bad");
        try
        {
            PromptAdapter.WriteVirtualTokenLogits(dir, new float[7]);
            var error = Assert.Throws<PeftOnnxException>(() => VirtualTokenLogits.Load(dir, 10));
            Assert.Equal($"{Path.Combine(dir, CausalLmContract.VirtualTokenLogitsFile)}: tensor '{CausalLmContract.VirtualTokenLogits}' has shape [7] but the export's vocabulary needs [10]", error.Message);
            Assert.Null(VirtualTokenLogits.Load(Paths.TempDir("peft-onnx-soft-none"), 10));
        }
        finally { Directory.Delete(dir, true); }
    }

    private static string BaseDir(string arch) =>
        arch == "llama_gqa" ? Paths.CurrentCase("llama_gqa", "base_model") : Paths.Case(arch, "base_model");

    /// <summary>A PROMPT_TUNING adapter whose prompt rows are the base's word-embedding rows of <paramref name="ids"/>.</summary>
    private static void WriteEmbeddingRowsAdapter(string baseDir, ModelConfig config, long[] ids, string adapterDir)
    {
        var arch = Peft.Onnx.Core.Architectures.Architecture.For(config);
        using var checkpoint = CheckpointTensors.Open(baseDir);
        var table = checkpoint.ReadFloat32(arch.WordEmbeddings);
        int width = config.InputEmbeddingWidth;
        var rows = ids.SelectMany(id => table.AsSpan((int)id * width, width).ToArray()).ToArray();
        File.WriteAllText(Path.Combine(adapterDir, "adapter_config.json"),
            $$"""{"peft_type": "PROMPT_TUNING", "task_type": "CAUSAL_LM", "num_virtual_tokens": {{ids.Length}}, "prompt_tuning_init": "RANDOM"}""");
        SafeTensorsWriter.Write(Path.Combine(adapterDir, AdapterFormat.WeightsFile), [TensorData.FromFloat32(AdapterFormat.PromptEmbeddings, [ids.Length, width], rows)]);
    }

    private static float[] LastLogits(string dir, long[] ids, int vocab)
    {
        using var runner = CausalLmForward.Open(Path.Combine(dir, CausalLmContract.ModelFile));
        var logits = runner.Logits(ids, Enumerable.Repeat(1L, ids.Length).ToArray(), 1);
        return logits.AsSpan((ids.Length - 1) * vocab, vocab).ToArray();
    }
}
