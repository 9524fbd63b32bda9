using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Onnx.Proto;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>The exported GPT-2 graph against transformers 4.33 (fixture), itself (cache vs no cache) and the trainer's model.</summary>
public class Gpt2ExportTests(ITestOutputHelper output)
{
    [Fact]
    public void Fixture_logits_match_transformers() => DecoderExportChecks.FixtureLogits("gpt2", output);

    [Fact]
    public void Fixture_greedy_generation_with_kv_cache_matches_transformers() => DecoderExportChecks.FixtureGreedy("gpt2");

    [Fact]
    public void Left_padded_cached_decoding_equals_full_prefill() => DecoderExportChecks.CachedDecodingEqualsFullPrefill(Paths.Case("gpt2", "base_model"));

    [Fact]
    public void Graph_takes_position_ids_and_ties_the_head_to_wte()
    {
        var dir = BloomExportTests.Export(Paths.Case("gpt2", "base_model"));
        try
        {
            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, CausalLmContract.ModelFile)));
            Assert.Equal(["input_ids", "attention_mask", "position_ids", "past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key", "past_key_values.1.value", "num_logits_to_keep"],
                model.Graph.Input.Select(i => i.Name));
            NumLogitsToKeepChecks.AssertDefaultsToEveryPosition(model);
            Assert.Equal(["batch_size", "sequence_length"], model.Graph.Input[2].Type.TensorType.Shape.Dim.Select(d => d.DimParam));
            var nodes = model.Graph.Node.Select(n => n.Name).ToHashSet();
            Assert.Contains("/transformer/h.0/attn/c_attn/MatMul", nodes);
            Assert.Contains("/transformer/h.1/mlp/c_proj/Add", nodes);
            Assert.Contains("/transformer/ln_f/LayerNormalization", nodes);
            var initializers = model.Graph.Initializer.ToDictionary(t => t.Name);
            Assert.Equal([64, 192], initializers["transformer.h.0.attn.c_attn.weight"].Dims); // Conv1D: [in, out] as stored
            Assert.Equal([128, 64], initializers["transformer.wpe.weight"].Dims);
            Assert.DoesNotContain("lm_head.weight", initializers.Keys);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>
    /// Layouts the fixture does not cover, against the trainer's GPT-2 (the same transformers math in TorchSharp):
    /// scale_attn_by_inverse_layer_idx, reorder_and_upcast_attn, other activations, n_inner, untied head.
    /// </summary>
    [Theory]
    [InlineData("\"scale_attn_by_inverse_layer_idx\": true, \"activation_function\": \"gelu\", \"n_inner\": 40, \"tie_word_embeddings\": false")]
    [InlineData("\"reorder_and_upcast_attn\": true, \"scale_attn_by_inverse_layer_idx\": true, \"activation_function\": \"quick_gelu\"")]
    [InlineData("\"scale_attn_weights\": false, \"activation_function\": \"relu\", \"n_layer\": 3")]
    public void Other_layouts_match_the_trainer_model(string extra)
    {
        var json = $$"""
            { "model_type": "gpt2", "vocab_size": 100, "n_embd": 48, "n_layer": 2, "n_head": 4, "n_positions": 32,
              "layer_norm_epsilon": 1e-5, "bos_token_id": 1, "eos_token_id": 1, {{extra}} }
            """;
        DecoderExportChecks.MatchesTrainer(json, output);
    }
}

/// <summary>Checks shared by the decoder-only export tests (GPT-2, OPT, LLaMA).</summary>
internal static class DecoderExportChecks
{
    /// <summary>Prompts (ids &lt; 100, so small random vocabularies work too), left-padded together with pad 0.</summary>
    public static readonly long[][] Prompts = [[5, 17, 31, 44, 9, 80, 12], [77, 3, 25], [64, 21, 8, 99, 42]];

    /// <summary>The exported base model's logits on the fixture inputs vs transformers' (real tokens only).</summary>
    public static void FixtureLogits(string arch, ITestOutputHelper output)
    {
        var dir = BloomExportTests.Export(Paths.Case(arch, "base_model"));
        try
        {
            using var reference = new Reference(arch);
            using var expected = SafeTensorsFile.Open(Path.Combine(Paths.Case(arch), "base_reference.safetensors"));
            var ids = reference.Inputs.ReadInt64("input_ids");
            var mask = reference.Inputs.ReadInt64("attention_mask");
            var batch = (int)reference.Shape("input_ids")[0];

            using var runner = CausalLmForward.Open(Path.Combine(dir, CausalLmContract.ModelFile));
            var step = runner.Run(ids, mask, batch);

            Assert.Equal(expected["logits"].Shape, step.LogitsShape);
            var reference32 = expected.ReadFloat32("logits");
            var rows = Tolerance.RowsFromMask(mask);
            output.WriteLine($"{arch} fixture: max |logit diff| on real tokens = {MaxDiff(reference32, step.Logits, runner.VocabSize, rows):g3}");
            Tolerance.AssertLogits(reference32, step.Logits, runner.VocabSize, rows, $"{arch} onnx logits");
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>Greedy decoding through the exported graph's cache reproduces base_meta.json "generated" token for token.</summary>
    public static void FixtureGreedy(string arch)
    {
        var dir = BloomExportTests.Export(Paths.Case(arch, "base_model"));
        try
        {
            using var reference = new Reference(arch);
            var expected = Reference.Rows(reference.BaseMeta.GetProperty("generated"))[0];
            var prompt = reference.Inputs.ReadInt64("gen_input_ids");
            var eos = ModelConfig.Load(Paths.Case(arch, "base_model")).EosTokenId?[0] ?? -1;
            using var runner = CausalLmForward.Open(Path.Combine(dir, CausalLmContract.ModelFile));
            Assert.Equal(expected, BloomExportTests.Greedy(runner, prompt, expected.Length - prompt.Length, eos));
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>
    /// Left-padded prompts (positions from the mask), then two tokens, then one through the cache: each step's logits
    /// on real tokens equal the full prefill's, and the cache grows by the step's length.
    /// </summary>
    public static void CachedDecodingEqualsFullPrefill(string modelDir)
    {
        var dir = BloomExportTests.Export(modelDir);
        try
        {
            using var runner = CausalLmForward.Open(Path.Combine(dir, CausalLmContract.ModelFile));
            CachedDecodingEqualsFullPrefill(runner);
        }
        finally { Directory.Delete(dir, true); }
    }

    public static void CachedDecodingEqualsFullPrefill(CausalLmForward runner)
    {
        var (prompt, promptMask, width) = LeftPad(Prompts);
        int batch = Prompts.Length, more = 3, total = width + more;
        var ids = new long[batch * total];
        var mask = new long[batch * total];
        for (int b = 0; b < batch; b++)
        {
            Array.Copy(prompt, b * width, ids, b * total, width);
            Array.Copy(promptMask, b * width, mask, b * total, width);
            for (int t = width; t < total; t++) { ids[b * total + t] = 10 * (b + 1) + t; mask[b * total + t] = 1; }
        }
        int vocab = runner.VocabSize;
        var full = runner.Run(ids, mask, batch);

        var step = runner.Run(prompt, promptMask, batch);
        Tolerance.AssertLogits(Columns(full.Logits, batch, total, 0, width, vocab), step.Logits, vocab, Tolerance.RowsFromMask(promptMask), "prompt");
        Assert.Equal(width, step.Present.Length);

        step = runner.Run(Columns(ids, batch, total, width, width + 2, 1), Columns(mask, batch, total, 0, width + 2, 1), batch, step.Present);
        Tolerance.AssertLogits(Columns(full.Logits, batch, total, width, width + 2, vocab), step.Logits, vocab, null, "two cached tokens");
        step = runner.Run(Columns(ids, batch, total, width + 2, total, 1), mask, batch, step.Present);
        Tolerance.AssertLogits(Columns(full.Logits, batch, total, width + 2, total, vocab), step.Logits, vocab, null, "one cached token");
        Assert.Equal(total, step.Present.Length);
        // the cache of the unpadded first row (padded rows' pad positions attend to nothing, so they may differ)
        int rowValues = runner.NumHeads * total * runner.HeadDim;
        for (int i = 0; i < runner.NumLayers; i++)
        {
            Tolerance.AssertLogits(full.Present.Keys[i][..rowValues], step.Present.Keys[i][..rowValues], runner.HeadDim, null, $"present.{i}.key");
            Tolerance.AssertLogits(full.Present.Values[i][..rowValues], step.Present.Values[i][..rowValues], runner.HeadDim, null, $"present.{i}.value");
        }
    }

    /// <summary>
    /// Writes <paramref name="configJson"/> with random weights, exports it, and compares the graph's logits with the
    /// trainer's TorchSharp model (transformers' math) on left-padded prompts, position_ids from the mask; then
    /// checks cached decoding.
    /// </summary>
    public static void MatchesTrainer(string configJson, ITestOutputHelper output)
    {
        var source = Paths.TempDir("peft-onnx-layout");
        var dir = "";
        try
        {
            File.WriteAllText(Path.Combine(source, "config.json"), configJson);
            var arch = Architecture.For(ModelConfig.Load(source));
            WriteRandomWeights(arch, Path.Combine(source, "model.safetensors"), seed: 11);
            dir = BloomExportTests.Export(source);

            var (ids, mask, width) = LeftPad(Prompts);
            int batch = Prompts.Length;
            float[] expected;
            using (var model = (CausalLm)ModelLoader.Load(source))
            using (NewDisposeScope())
            using (no_grad())
            {
                var positions = CausalLmContract.PositionIdsFromMask(mask, batch, width);
                var input = new CausalLmInput(tensor(ids, [batch, width]), tensor(mask, [batch, width]), PositionIds: tensor(positions, [batch, width]));
                expected = model.Forward(input).Logits.data<float>().ToArray();
            }

            using var runner = CausalLmForward.Open(Path.Combine(dir, CausalLmContract.ModelFile));
            var step = runner.Run(ids, mask, batch);
            var rows = Tolerance.RowsFromMask(mask);
            output.WriteLine($"{configJson.ReplaceLineEndings(" ")}: max |logit diff| vs trainer = {MaxDiff(expected, step.Logits, runner.VocabSize, rows):g3}");
            Tolerance.AssertLogits(expected, step.Logits, runner.VocabSize, rows, "onnx vs trainer logits");
            CachedDecodingEqualsFullPrefill(runner);
        }
        finally
        {
            Directory.Delete(source, true);
            if (dir.Length > 0) Directory.Delete(dir, true);
        }
    }

    /// <summary>model.safetensors with random weights (norm weights near 1) for every tensor of the architecture.</summary>
    public static void WriteRandomWeights(Architecture arch, string path, int seed)
    {
        var random = new Random(seed);
        var tensors = arch.Parameters.Select(p =>
        {
            var values = new float[p.ElementCount];
            bool norm = p.Shape.Length == 1 && p.Name.EndsWith(".weight", StringComparison.Ordinal);
            for (int i = 0; i < values.Length; i++) values[i] = (norm ? 1f : 0f) + (float)(random.NextDouble() - 0.5) * 0.5f;
            return TensorData.FromFloat32(p.Name, p.Shape, values);
        }).ToList();
        SafeTensorsWriter.Write(path, tensors);
    }

    /// <summary>Rows left-padded with id 0 into flat ids and mask [rows, width].</summary>
    public static (long[] Ids, long[] Mask, int Width) LeftPad(long[][] rows)
    {
        int width = rows.Max(r => r.Length);
        var ids = new long[rows.Length * width];
        var mask = new long[rows.Length * width];
        for (int r = 0; r < rows.Length; r++)
            for (int j = 0; j < rows[r].Length; j++)
            {
                ids[r * width + width - rows[r].Length + j] = rows[r][j];
                mask[r * width + width - rows[r].Length + j] = 1;
            }
        return (ids, mask, width);
    }

    /// <summary>Columns [from, to) of a [batch, total, inner] tensor, flattened.</summary>
    public static T[] Columns<T>(T[] values, int batch, int total, int from, int to, int inner)
    {
        var result = new T[batch * (to - from) * inner];
        for (int b = 0; b < batch; b++)
            Array.Copy(values, ((long)b * total + from) * inner, result, (long)b * (to - from) * inner, (long)(to - from) * inner);
        return result;
    }

    public static float MaxDiff(float[] expected, float[] actual, int vocab, bool[]? rows) =>
        expected.Select((e, i) => rows == null || rows[i / vocab] ? Math.Abs(e - actual[i]) : 0f).Max();
}
