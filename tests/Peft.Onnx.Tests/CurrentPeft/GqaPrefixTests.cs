using System.Text.Json;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Passes;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Tests.Training;
using Peft.Onnx.Tests.Tuners;
using Peft.Onnx.Trainer.Generation;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Trainer.Tuners.PromptLearning;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.CurrentPeft;

/// <summary>
/// Prefix tuning under grouped-query attention as PEFT 0.13.2 saves it (tests/fixtures/peft-current/llama_gqa: LLaMA
/// with 4 heads and 2 key/value heads; adapter_config.json has num_attention_heads = 2, token_dim = head_dim x 2):
/// counts, the adapted logits and loss, generation, save/load, 3 SGD + 3 AdamW steps, the prefix PEFT hands the
/// model, and the export's logits, loss and generation.
/// </summary>
public class GqaPrefixTests(ITestOutputHelper output)
{
    private const string Arch = "llama";

    public static TheoryData<string> Methods() => new("prefix", "prefix_proj");

    private static string CaseDir(string method) => Paths.CurrentCase("llama_gqa", method);
    private static string BaseDir => Paths.CurrentCase("llama_gqa", "base_model");

    [Theory, MemberData(nameof(Methods))]
    public void Counts_equal_print_trainable_parameters(string method)
    {
        var meta = Reference.MetaAt(CaseDir(method));
        var config = AdapterConfig.Load(Path.Combine(CaseDir(method), "adapter"));
        var counts = ParameterCount.Count(Architecture.For(ModelConfig.Load(BaseDir)), config);
        Assert.Equal(meta.GetProperty("counts").GetProperty("trainable").GetInt64(), counts.Trainable);
        Assert.Equal(meta.GetProperty("counts").GetProperty("all").GetInt64(), counts.All);
    }

    /// <summary>
    /// Bad input, refused in one line before any weight is read: a head count that is neither the model's heads nor its
    /// kv heads, and prompt_embeddings sized for all 4 heads (what PEFT 0.7.1 would write, and could not run) where the
    /// config, rewritten for the kv heads as PEFT does, needs half the width.
    /// </summary>
    [Theory]
    [InlineData(3, 48, 128, "num_attention_heads = 3 does not fit the base model")]
    [InlineData(4, 64, 256, "tensor 'prompt_embeddings' has shape [8, 256] but")]
    public void Misfit_gqa_prefixes_are_refused_naming_the_key_or_tensor(int heads, int tokenDim, int width, string expected)
    {
        var dir = Paths.TempDir("peft-onnx-gqa-bad");
        try
        {
            File.WriteAllText(Path.Combine(dir, "adapter_config.json"), $$"""
                { "peft_type": "PREFIX_TUNING", "task_type": "CAUSAL_LM", "num_virtual_tokens": 8, "token_dim": {{tokenDim}},
                  "num_attention_heads": {{heads}}, "num_layers": 2, "num_transformer_submodules": 1, "prefix_projection": false }
                """);
            SafeTensorsWriter.Write(Path.Combine(dir, AdapterFormat.WeightsFile), [TensorData.FromFloat32(AdapterFormat.PromptEmbeddings, [8, width], new float[8 * width])]);
            var config = ModelConfig.Load(BaseDir);
            var export = Assert.Throws<Peft.Onnx.Core.PeftOnnxException>(() => PromptAdapter.Load(dir, config));
            Assert.Contains(expected, export.Message, StringComparison.Ordinal);
            Assert.DoesNotContain('\n', export.Message);
            var train = Assert.Throws<Peft.Onnx.Core.PeftOnnxException>(() => PeftModel.Load(BaseDir, dir));
            Assert.Equal(export.Message, train.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>As a user runs them: `inspect` prints PEFT's counts and `forward --adapter` writes PEFT's loss.</summary>
    [Fact]
    public void Cli_inspect_and_forward_on_the_gqa_prefix_match_peft()
    {
        var adapter = Path.Combine(CaseDir("prefix_proj"), "adapter");
        var meta = Reference.MetaAt(CaseDir("prefix_proj"));
        var inspect = CliRunner.Run("inspect", "--base", BaseDir, "--adapter", adapter, "--json");
        Assert.Equal(0, inspect.ExitCode);
        using (var doc = JsonDocument.Parse(inspect.Stdout))
        {
            Assert.Equal(meta.GetProperty("counts").GetProperty("trainable").GetInt64(), doc.RootElement.GetProperty("trainable").GetInt64());
            Assert.Equal(meta.GetProperty("counts").GetProperty("all").GetInt64(), doc.RootElement.GetProperty("all").GetInt64());
        }
        var outFile = Path.Combine(Path.GetTempPath(), $"peft-onnx-gqa-forward-{Guid.NewGuid():N}.safetensors");
        try
        {
            var forward = CliRunner.Run("forward", "--base", BaseDir, "--adapter", adapter, "--inputs", Path.Combine(Paths.CurrentCase("llama_gqa"), "inputs.safetensors"),
                "--out", outFile, "--device", "cpu");
            Assert.Equal(0, forward.ExitCode);
            using var written = SafeTensorsFile.Open(outFile);
            Tolerance.AssertLoss(meta.GetProperty("loss").GetDouble(), written.ReadFloat32("loss")[0], "forward --adapter loss");
        }
        finally { File.Delete(outFile); }
    }

    [Theory, MemberData(nameof(Methods))]
    public void Saved_adapter_matches_peft(string method)
    {
        using var fixture = new TunerFixture(Arch, method, CaseDir(method));
        Assert.Equal(BaseDir, fixture.BaseDir);
        using var model = PeftModel.Load(fixture.BaseDir, fixture.AdapterDir);
        using var scope = NewDisposeScope();
        var output = fixture.Forward(model);
        fixture.AssertMatches(output);
        TunerFixture.AssertSavesAsPeft(model, fixture.AdapterDir);

        // generation goes through the tuner, which hands the prefix to every step
        var expected = Reference.Rows(fixture.Meta.GetProperty("generated"))[0];
        var prompt = tensor(fixture.Inputs.Inputs.ReadInt64("gen_input_ids"), fixture.Inputs.Shape("gen_input_ids"));
        var eos = model.Base.Config.EosTokenId!.Select(e => (long)e).ToArray();
        var generated = PromptLearningCases.Tuner(model).Generate(prompt, null, new GreedyOptions(expected.Length - (int)prompt.shape[1], eos, model.Base.Config.PadTokenId ?? eos[0]));
        Assert.Equal(expected, generated[0].data<long>().ToArray());
        var baseGenerated = Reference.Rows(fixture.Inputs.BaseMeta.GetProperty("generated"))[0];
        Assert.NotEqual(baseGenerated, expected);
    }

    /// <summary>The key/value prefix of every layer is PEFT's get_prompt (prompt.past.{layer}.0: [2, 1, kv_heads, nv, head_dim]), in the trainer and in the export.</summary>
    [Theory, MemberData(nameof(Methods))]
    public void Prefix_has_the_key_value_heads_and_equals_peft_get_prompt(string method)
    {
        using var expected = SafeTensorsFile.Open(Path.Combine(CaseDir(method), "reference.safetensors"));
        var config = ModelConfig.Load(BaseDir);
        Assert.Equal(2, config.Dimensions.NumKeyValueHeads);
        Assert.Equal(4, config.Dimensions.NumHeads);
        var baked = BakePrefix.ForDecoder(PromptAdapter.Load(Path.Combine(CaseDir(method), "adapter"), config), config);
        Assert.Equal(2, baked.Heads);

        using var model = PeftModel.Load(BaseDir, Path.Combine(CaseDir(method), "adapter"));
        using var scope = NewDisposeScope();
        var cache = ((Peft.Onnx.Trainer.Tuners.PrefixTuning.PrefixTuner)model.Tuner).PastKeyValues(1);
        for (int layer = 0; layer < config.Dimensions.NumLayers; layer++)
        {
            var stacked = expected.ReadFloat32($"prompt.past.{layer}.0");
            Assert.Equal([2, 1, 2, 8, 16], expected[$"prompt.past.{layer}.0"].Shape);
            Assert.Equal(stacked[..(stacked.Length / 2)], baked.Keys[layer]);
            Assert.Equal(stacked[(stacked.Length / 2)..], baked.Values[layer]);
            var (key, value) = cache.Self[layer];
            Assert.Equal([1, 2, 8, 16], key.shape);
            Assert.Equal(stacked[..(stacked.Length / 2)], PromptLearningCases.Floats(key));
            Assert.Equal(stacked[(stacked.Length / 2)..], PromptLearningCases.Floats(value));
        }
    }

    [Theory, MemberData(nameof(Methods))]
    public void Sgd_and_adamw_steps_match_peft(string method) =>
        new TrainingParityTests(output).AssertTrainingMatches(Arch, method, CaseDir(method));

    /// <summary>The trained adapter PEFT saved (adapter_trained) loads, and saves back byte for byte.</summary>
    [Theory, MemberData(nameof(Methods))]
    public void Trained_adapter_saves_as_peft_saved_it(string method)
    {
        var trained = Path.Combine(CaseDir(method), "adapter_trained");
        using var model = PeftModel.Load(BaseDir, trained);
        TunerFixture.AssertSavesAsPeft(model, trained);
    }

    /// <summary>
    /// A fresh config (sizes left to the model, as `train --data --method prefix_tuning` writes one) is sized as PEFT
    /// 0.13.2 sizes it under GQA, and so is a config that PEFT 0.7.1 sized by the attention heads (token_dim = hidden):
    /// both become num_attention_heads = kv heads, token_dim = head_dim x kv heads.
    /// </summary>
    [Theory]
    [InlineData(null, null)]
    [InlineData(4, 64)]
    [InlineData(2, 32)]
    public void Configs_are_sized_for_the_key_value_heads_as_peft_saves_them(int? heads, int? tokenDim)
    {
        var config = new PrefixTuningConfig { NumVirtualTokens = 8, TaskType = "CAUSAL_LM", NumAttentionHeads = heads, TokenDim = tokenDim };
        var prepared = (PrefixTuningConfig)config.PreparedFor(Architecture.For(ModelConfig.Load(BaseDir)));
        Assert.Equal(2, prepared.NumAttentionHeads);
        Assert.Equal(32, prepared.TokenDim);
        Assert.Equal(32, prepared.EncoderHiddenSize);
        Assert.Equal(2, prepared.NumLayers);

        using var model = PeftModel.Create(ModelLoader.Load(BaseDir), config with { PrefixProjection = true }, seed: 3);
        var dir = Paths.TempDir();
        try
        {
            model.Save(dir);
            var saved = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "adapter_config.json"))).RootElement;
            var peft = Reference.MetaAt(CaseDir("prefix_proj")).GetProperty("peft_config");
            foreach (var key in new[] { "num_attention_heads", "token_dim", "encoder_hidden_size", "num_layers", "num_transformer_submodules" })
                Assert.Equal(peft.GetProperty(key).GetInt32(), saved.GetProperty(key).GetInt32());
            using var file = SafeTensorsFile.Open(Path.Combine(dir, AdapterFormat.WeightsFile));
            Assert.Equal([8, 128], file[AdapterFormat.PromptEmbeddings].Shape);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>
    /// Other shapes than the fixtures': LLaMA with 4 heads and 1 key/value head, a fresh prefix (other lengths, with and
    /// without projection) trained two AdamW steps, saved, counted, reloaded and exported: the export's logits and loss
    /// equal the trainer's, and the saved config is sized for the one kv head.
    /// </summary>
    [Theory]
    [InlineData(5, false, null)]
    [InlineData(3, true, 20)]
    public void Fresh_prefix_on_another_gqa_shape_trains_saves_and_exports_alike(int virtualTokens, bool projection, int? hidden)
    {
        var baseDir = Exporter.BakePrefixEquivalenceTests.GqaLlama(kvHeads: 1);
        var adapterDir = Paths.TempDir("peft-onnx-gqa-fresh");
        var onnxDir = Path.Combine(Path.GetTempPath(), $"peft-onnx-gqa-fresh-{Guid.NewGuid():N}");
        try
        {
            var inputs = Path.Combine(Paths.CurrentCase("llama_gqa"), "inputs.safetensors");
            var batch = ForwardBatch.Read(inputs);
            var config = new PrefixTuningConfig { NumVirtualTokens = virtualTokens, TaskType = "CAUSAL_LM", PrefixProjection = projection, EncoderHiddenSize = hidden };
            ForwardResult expected;
            using (var model = PeftModel.Create(ModelLoader.Load(baseDir), config, seed: virtualTokens))
            {
                using (var optimizer = TrainingParityTests.ReferenceOptimizer("adamw").Create(model.Tuner.TrainableParameters))
                    Peft.Onnx.Trainer.Training.OneBatchSteps.Run(model, batch, optimizer, 2);
                model.Save(adapterDir);
                var counts = ParameterCount.Count(Architecture.For(ModelConfig.Load(baseDir)), AdapterConfig.Load(adapterDir));
                Assert.Equal(model.Tuner.TrainableParameters.Sum(p => p.Parameter.numel()), counts.Trainable);
            }
            var saved = (PrefixTuningConfig)AdapterConfig.Load(adapterDir);
            Assert.Equal((1, 16, hidden ?? 16), (saved.NumAttentionHeads, saved.TokenDim, saved.EncoderHiddenSize));
            using (var reloaded = PeftModel.Load(baseDir, adapterDir))
                expected = Peft.Onnx.Trainer.Inference.ForwardPass.Run(reloaded, batch);

            OnnxExport.Export(baseDir, adapterDir, onnxDir, new ExportOptions());
            var actual = OnnxForward.Run(onnxDir, batch, inputs);
            Assert.Equal(expected.LogitsShape, actual.LogitsShape);
            Tolerance.AssertLogits(expected.Logits, actual.Logits, (int)actual.LogitsShape[^1], Tolerance.RowsFromMask(batch.AttentionMask), "fresh GQA prefix: ONNX vs trainer logits");
            Tolerance.AssertLoss(expected.Loss!.Value, actual.Loss!.Value, "fresh GQA prefix: ONNX vs trainer loss");
        }
        finally
        {
            foreach (var d in new[] { baseDir, adapterDir, onnxDir })
                if (Directory.Exists(d)) Directory.Delete(d, true);
        }
    }

    /// <summary>
    /// The export attends to the kv-head prefix: logits on the real tokens, the loss `forward --onnx` reports (checked by
    /// <see cref="AdapterExportParity.RunCase"/>; prefix tuning prepends no labels, so PEFT's loss is over the real tokens
    /// alone and the export stores no virtual-token logits) and greedy generation equal PEFT's.
    /// </summary>
    [Theory, MemberData(nameof(Methods))]
    public void Export_logits_loss_and_generation_match_peft(string method)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"peft-onnx-gqa-prefix-{Guid.NewGuid():N}");
        try
        {
            OnnxExport.Export(BaseDir, Path.Combine(CaseDir(method), "adapter"), dir, new ExportOptions());
            var meta = Reference.MetaAt(CaseDir(method));
            var generated = Reference.Rows(meta.GetProperty("generated"))[0];
            var (maxDiff, tokens) = AdapterExportParity.RunCase(Arch, CaseDir(method), dir, "logits", generated.Length);
            output.WriteLine($"llama_gqa/{method}: max |logit diff| {maxDiff:g3}");
            Assert.Equal(generated, tokens);

            Assert.False(File.Exists(Path.Combine(dir, Peft.Onnx.Core.Onnx.CausalLmContract.VirtualTokenLogitsFile)), "prefix tuning has no virtual-token logits");
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }
}
