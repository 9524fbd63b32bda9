using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Runtime;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Onnx.Proto;
using Peft.Onnx.Trainer.Modeling;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Support;

/// <summary>Checks shared by the decoder-only export tests (GPT-2, OPT, LLaMA).</summary>
internal static class DecoderExportChecks
{
    /// <summary>Prompts (ids &lt; 100, so small random vocabularies work too), left-padded together with pad 0.</summary>
    public static readonly long[][] Prompts = [[5, 17, 31, 44, 9, 80, 12], [77, 3, 25], [64, 21, 8, 99, 42]];

    /// <summary>The exported base model's logits on the fixture inputs vs transformers' (real tokens only).</summary>
    public static void FixtureLogits(string arch, ITestOutputHelper output)
    {
        var dir = TempExports.Base(Paths.Case(arch, "base_model"));
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
        var dir = TempExports.Base(Paths.Case(arch, "base_model"));
        try
        {
            using var reference = new Reference(arch);
            var expected = Reference.Rows(reference.BaseMeta.GetProperty("generated"))[0];
            var prompt = reference.Inputs.ReadInt64("gen_input_ids");
            var eos = ModelConfig.Load(Paths.Case(arch, "base_model")).EosTokenId?[0] ?? -1;
            using var runner = CausalLmForward.Open(Path.Combine(dir, CausalLmContract.ModelFile));
            Assert.Equal(expected, OnnxGreedy.Generate(runner, prompt, expected.Length - prompt.Length, eos));
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>
    /// Left-padded prompts (positions from the mask), then two tokens, then one through the cache: each step's logits
    /// on real tokens equal the full prefill's, and the cache grows by the step's length.
    /// </summary>
    public static void CachedDecodingEqualsFullPrefill(string modelDir)
    {
        var dir = TempExports.Base(modelDir);
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
            dir = TempExports.Base(source);

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
