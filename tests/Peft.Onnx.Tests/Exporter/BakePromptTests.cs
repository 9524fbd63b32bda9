using System.Text.Json;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Onnx.Proto;
using Peft.Onnx.Exporter.Passes;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>
/// Prompt tuning, p-tuning and prefix tuning baked into plain ONNX (BakeSoftPrompt, BakePrefix) against PEFT 0.7.1 +
/// transformers 4.33 (fixtures): logits on the real tokens, greedy generation through the exported cache, and the loss
/// `forward --onnx` reports.
/// </summary>
public class BakePromptTests(ITestOutputHelper output)
{
    public static readonly string[] PromptMethods = ["prompt_tuning_random", "prompt_tuning_text", "p_tuning_mlp", "p_tuning_lstm", "prefix", "prefix_proj"];

    public static IEnumerable<object[]> Cases() =>
        from arch in Paths.Archs from method in PromptMethods select new object[] { arch, method };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Fixture_logits_and_greedy_generation_match_peft(string arch, string method)
    {
        var dir = Export(arch, method, verify: false);   // the export's own ORT check is exercised by the other tests
        try
        {
            var meta = Reference.Meta(arch, method);
            if (arch is "t5" or "mt5") CheckSeq2Seq(arch, method, meta, dir);
            else CheckCausal(arch, method, meta, dir);
        }
        finally { Directory.Delete(dir, true); }
    }

    private void CheckCausal(string arch, string method, JsonElement meta, string dir)
    {
        using var reference = new Reference(arch);
        using var expected = SafeTensorsFile.Open(Path.Combine(Paths.Case(arch, method), "reference.safetensors"));
        var ids = reference.Inputs.ReadInt64("input_ids");
        var mask = reference.Inputs.ReadInt64("attention_mask");
        int batch = (int)reference.Shape("input_ids")[0], seq = (int)reference.Shape("input_ids")[1];

        using var runner = CausalLmForward.Open(Path.Combine(dir, CausalLmContract.ModelFile));
        Assert.False(runner.HasPositionIds);
        var step = runner.Run(ids, mask, batch);
        int vocab = runner.VocabSize;
        Assert.Equal([batch, seq, vocab], step.LogitsShape);

        // PEFT's logits include the virtual positions for soft prompts ([B, nv + T, V]): keep the last T.
        var refShape = meta.GetProperty("logits_shape").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var full = expected.ReadFloat32("logits");
        int skip = refShape[1] - seq;
        var real = new float[batch * seq * vocab];
        for (int b = 0; b < batch; b++)
            Array.Copy(full, ((long)b * refShape[1] + skip) * vocab, real, (long)b * seq * vocab, (long)seq * vocab);
        var rows = Tolerance.RowsFromMask(mask);
        var maxDiff = real.Select((e, i) => rows[i / vocab] ? Math.Abs(e - step.Logits[i]) : 0f).Max();
        output.WriteLine($"{arch}/{method}: max |logit diff| on real tokens = {maxDiff:g3}");
        Tolerance.AssertLogits(real, step.Logits, vocab, rows, $"{arch}/{method} logits");

        var generated = Reference.Rows(meta.GetProperty("generated"))[0];
        var prompt = reference.Inputs.ReadInt64("gen_input_ids");
        var eos = ModelConfig.Load(Paths.Case(arch, "base_model")).EosTokenId?[0] ?? -1;
        Assert.Equal(generated, OnnxGreedy.Generate(runner, prompt, generated.Length - prompt.Length, eos));

        // PEFT's loss: a soft prompt's labels get nv -100s in front, so the last virtual token scores the first real
        // label (the export stores those logits); prefix tuning passes the labels as they are (no such file, no such term)
        var loss = OnnxForwardLoss(arch, dir);
        Tolerance.AssertLoss(meta.GetProperty("loss").GetDouble(), loss, $"{arch}/{method} ONNX loss");
        bool soft = !method.StartsWith("prefix", StringComparison.Ordinal);
        Assert.Equal(soft, File.Exists(Path.Combine(dir, CausalLmContract.VirtualTokenLogitsFile)));
        var realTokensOnly = MeanCrossEntropy.Of(step.Logits, vocab, reference.Inputs.ReadInt64("labels"), shift: true, batch);
        output.WriteLine($"{arch}/{method}: ONNX loss {loss}, PEFT {meta.GetProperty("loss").GetDouble()}, real tokens alone {realTokensOnly}");
        if (soft) Assert.True(Math.Abs(realTokensOnly - loss) > 1e-3, $"{arch}/{method}: the virtual token's term changes nothing ({realTokensOnly} vs {loss})");
        else Assert.Equal(realTokensOnly, loss, 5);
    }

    /// <summary>The loss `forward --onnx` reports on the fixture batch of <paramref name="arch"/>.</summary>
    private static float OnnxForwardLoss(string arch, string dir)
    {
        var inputs = Path.Combine(Paths.Case(arch), "inputs.safetensors");
        return OnnxForward.Run(dir, ForwardBatch.Read(inputs), inputs).Loss!.Value;
    }

    private void CheckSeq2Seq(string arch, string method, JsonElement meta, string dir)
    {
        using var reference = new Reference(arch);
        using var expected = SafeTensorsFile.Open(Path.Combine(Paths.Case(arch, method), "reference.safetensors"));
        var ids = reference.Inputs.ReadInt64("input_ids");
        var mask = reference.Inputs.ReadInt64("attention_mask");
        var labels = reference.Inputs.ReadInt64("labels");
        int batch = (int)reference.Shape("input_ids")[0];
        var config = (T5Config)ModelConfig.Load(Paths.Case(arch, "base_model"));

        using var runner = Seq2SeqForward.Open(dir);
        var step = runner.Forward(ids, mask, Seq2SeqForward.ShiftRight(labels, batch, config.DecoderStartId, config.PadTokenId ?? 0), batch);
        Assert.Equal(expected["logits"].Shape, step.LogitsShape);
        var reference32 = expected.ReadFloat32("logits");
        var rows = labels.Select(l => l != -100).ToArray();
        var maxDiff = reference32.Select((e, i) => rows[i / runner.VocabSize] ? Math.Abs(e - step.Logits[i]) : 0f).Max();
        output.WriteLine($"{arch}/{method}: max |logit diff| on real tokens = {maxDiff:g3}");
        Tolerance.AssertLogits(reference32, step.Logits, runner.VocabSize, rows, $"{arch}/{method} logits");

        var generated = Reference.Rows(meta.GetProperty("generated"))[0];
        var prompt = reference.Inputs.ReadInt64("gen_input_ids");
        var eos = config.EosTokenId!.Select(e => (long)e).ToArray();
        var greedy = runner.Greedy(prompt, Enumerable.Repeat(1L, prompt.Length).ToArray(), 1, generated.Length - 1, config.DecoderStartId, eos, config.PadTokenId ?? 0);
        Assert.Equal(generated, greedy[0]);

        // the labels go to the decoder, which PEFT gives no virtual tokens: its loss is over the labels alone, no gap
        Tolerance.AssertLoss(meta.GetProperty("loss").GetDouble(), OnnxForwardLoss(arch, dir), $"{arch}/{method} ONNX loss");
        Assert.False(File.Exists(Path.Combine(dir, CausalLmContract.VirtualTokenLogitsFile)));

        if (method.StartsWith("prefix", StringComparison.Ordinal))
        {
            // the encoder is the base one: the standard runner works, and agrees
            using var standard = Seq2SeqForward.Open(dir);
            var again = standard.Greedy(prompt, Enumerable.Repeat(1L, prompt.Length).ToArray(), 1, generated.Length - 1, config.DecoderStartId, eos, config.PadTokenId ?? 0);
            Assert.Equal(generated, again[0]);
        }
    }

    [Theory]
    [InlineData("bloom")]
    [InlineData("gpt2")]
    [InlineData("llama")]
    [InlineData("opt")]
    [InlineData("t5")]
    public void Prefix_layout_equals_peft_get_prompt(string arch)
    {
        var config = ModelConfig.Load(Paths.Case(arch, "base_model"));
        var adapter = PromptAdapter.Load(Path.Combine(Paths.Case(arch, "prefix"), "adapter"), config);
        using var expected = SafeTensorsFile.Open(Path.Combine(Paths.Case(arch, "prefix"), "reference.safetensors"));
        int nv = adapter.NumVirtualTokens, heads = config.Dimensions.NumKeyValueHeads, d = config.Dimensions.HeadDim;
        if (config.IsEncoderDecoder)
        {
            var prefix = BakePrefix.ForSeq2Seq(adapter, config);
            for (int layer = 0; layer < prefix.NumLayers; layer++)
            {
                var stacked = expected.ReadFloat32($"prompt.past.{layer}.0");   // [4, 1, heads, nv, d]: self k, self v, cross k, cross v
                int n = heads * nv * d;
                Assert.Equal(stacked[..n], prefix.Keys[layer]);
                Assert.Equal(stacked[n..(2 * n)], prefix.Values[layer]);
                Assert.Equal(stacked[(2 * n)..(3 * n)], prefix.CrossKeys![layer]);
                Assert.Equal(stacked[(3 * n)..], prefix.CrossValues![layer]);
            }
            return;
        }
        var p = BakePrefix.ForDecoder(adapter, config);
        for (int layer = 0; layer < p.NumLayers; layer++)
        {
            if (arch == "bloom")
            {
                // BLOOM's cache layout: key [heads, d, nv], value [heads, nv, d]
                var key = expected.ReadFloat32($"prompt.past.{layer}.0");
                var transposed = new float[key.Length];
                for (int h = 0; h < heads; h++)
                    for (int t = 0; t < nv; t++)
                        for (int j = 0; j < d; j++) transposed[(h * nv + t) * d + j] = key[(h * d + j) * nv + t];
                Assert.Equal(transposed, p.Keys[layer]);
                Assert.Equal(expected.ReadFloat32($"prompt.past.{layer}.1"), p.Values[layer]);
            }
            else
            {
                var stacked = expected.ReadFloat32($"prompt.past.{layer}.0");   // [2, 1, heads, nv, d]
                Assert.Equal(stacked[..(stacked.Length / 2)], p.Keys[layer]);
                Assert.Equal(stacked[(stacked.Length / 2)..], p.Values[layer]);
            }
        }
    }

    [Theory]
    [InlineData("gpt2", "prefix")]
    [InlineData("llama", "p_tuning_mlp")]
    [InlineData("bloom", "prompt_tuning_text")]
    public void Baked_prompt_is_constant_initializers_that_no_decode_step_copies(string arch, string method)
    {
        var baked = Export(arch, method);
        var base_ = TempExports.Base(Paths.Case(arch, "base_model"));
        try
        {
            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(baked, CausalLmContract.ModelFile)));
            var reference = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(base_, CausalLmContract.ModelFile)));
            var config = ModelConfig.Load(Paths.Case(arch, "base_model"));
            int layers = config.Dimensions.NumLayers, nv = Reference.Meta(arch, method).GetProperty("peft_config").GetProperty("num_virtual_tokens").GetInt32();

            // same interface as the base graph, less position_ids (implied by the prefix)
            Assert.Equal(reference.Graph.Input.Select(i => i.Name).Where(n => n != CausalLmContract.PositionIds), model.Graph.Input.Select(i => i.Name));
            Assert.Equal(reference.Graph.Output.Select(o => o.Name), model.Graph.Output.Select(o => o.Name));

            // the prefix is initializers (keys transposed [1, heads, head_dim, nv], values [1, heads, nv, head_dim]), never an input
            var dims = config.Dimensions;
            var initializers = model.Graph.Initializer.ToDictionary(t => t.Name);
            for (int i = 0; i < layers; i++)
            {
                Assert.Equal([1, dims.NumHeads, dims.HeadDim, nv], initializers[AttentionPrefix.KeyName(i)].Dims);
                Assert.Equal([1, dims.NumHeads, nv, dims.HeadDim], initializers[AttentionPrefix.ValueName(i)].Dims);
            }

            // per step the graph does the base work plus, per layer, two small products with the constants (scores
            // against the prefix, then their share of the weighted sum), and once a mask extension (and the implied
            // positions): a constant number of nodes
            // (a family whose base graph runs attention as one MultiHeadAttention node per layer spells it out where
            // the prefix is attended beside the cache: those nodes are the base formulation's, not the prefix's)
            var added = model.Graph.Node.Select(n => n.Name).Except(reference.Graph.Node.Select(n => n.Name)).ToList();
            bool fusedBase = reference.Graph.Node.Any(n => n.OpType == "MultiHeadAttention");
            Assert.Equal(arch is "bloom" or "gpt2" or "opt", fusedBase);
            Assert.DoesNotContain(model.Graph.Node, n => n.OpType == "MultiHeadAttention");
            bool PromptNode(string n) => n.Contains("/prompt", StringComparison.Ordinal) || n.Contains("prompt_mask", StringComparison.Ordinal) || n.Contains("position_ids", StringComparison.Ordinal);
            bool AttentionNode(string n) => new[] { "/self_attention/", "/attn/", "/self_attn/" }.Any(scope => n.Contains(scope, StringComparison.Ordinal));
            Assert.All(added, n => Assert.True(PromptNode(n) || (fusedBase && AttentionNode(n)), n));
            Assert.True(added.Count(PromptNode) <= 8 * layers + 12, $"{added.Count(PromptNode)} nodes added");
            // nothing copies the cache or the constants: only MatMuls read the constants (broadcast over the batch, no
            // Expand), and the caches feed no Concat beyond the one appending this step's keys/values
            var prompt = initializers.Keys.Where(n => n.StartsWith("prompt.past.", StringComparison.Ordinal)).ToHashSet();
            Assert.Equal(2 * layers, prompt.Count);
            Assert.All(model.Graph.Node.Where(n => n.Input.Any(prompt.Contains)), n => Assert.Equal("MatMul", n.OpType));
            Assert.DoesNotContain(model.Graph.Node, n => n.OpType == "Expand" && n.Name.Contains("/prompt/", StringComparison.Ordinal));
            var caches = model.Graph.Output.Select(o => o.Name).Where(n => n.StartsWith("present.", StringComparison.Ordinal)).ToHashSet();
            Assert.Equal(2 * layers, caches.Count);
            Assert.DoesNotContain(model.Graph.Node, n => n.OpType == "Concat" && n.Input.Any(caches.Contains));

            AssertPrefixInCacheGraph(baked, reference, model, dims, layers, nv);
        }
        finally
        {
            Directory.Delete(baked, true);
            Directory.Delete(base_, true);
        }
    }

    /// <summary>
    /// The prefix-in-cache graph beside model.onnx: the same interface; the prefix is one initializer [1, 2 * layers *
    /// kv_heads, nv, head_dim] inline in it, which enters present on the first step only; its attention is the base
    /// graph's (no MatMul reads the prefix); each present is one Concat of [prefix, past, new]; every weight is a
    /// reference into model.onnx.data (no second copy on disk, no data file of its own).
    /// </summary>
    private static void AssertPrefixInCacheGraph(string baked, ModelProto reference, ModelProto model, ModelDimensions dims, int layers, int nv)
    {
        var path = Path.Combine(baked, CausalLmContract.PrefixInCacheFile);
        var inCache = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        Assert.Equal(model.Graph.Input.Select(i => i.Name), inCache.Graph.Input.Select(i => i.Name));
        Assert.Equal(model.Graph.Output.Select(o => o.Name), inCache.Graph.Output.Select(o => o.Name));
        Assert.Equal(model.MetadataProps.Select(p => (p.Key, p.Value)), inCache.MetadataProps.Select(p => (p.Key, p.Value)));

        var initializers = inCache.Graph.Initializer.ToDictionary(t => t.Name);
        var cache = initializers[AttentionPrefix.CacheName];
        // where MultiHeadAttention appends to the cache itself, the prefix is in the layout of a step's keys and values
        bool fused = inCache.Graph.Node.Any(n => n.OpType == "MultiHeadAttention");
        Assert.Equal(fused ? [1, nv, 2 * layers * dims.NumKeyValueHeads * dims.HeadDim] : [1, 2 * layers * dims.NumKeyValueHeads, nv, dims.HeadDim], cache.Dims);
        Assert.Empty(cache.ExternalData);
        Assert.DoesNotContain(initializers.Keys, n => n.StartsWith("prompt.past.", StringComparison.Ordinal) && n != AttentionPrefix.CacheName);
        var stored = model.Graph.Initializer.Where(t => t.ExternalData.Count > 0).ToDictionary(t => t.Name, t => t.ExternalData.Select(e => (e.Key, e.Value)).ToList());
        Assert.NotEmpty(stored);
        foreach (var t in inCache.Graph.Initializer.Where(t => stored.ContainsKey(t.Name)))
            Assert.Equal(stored[t.Name], t.ExternalData.Select(e => (e.Key, e.Value)).ToList());
        Assert.All(inCache.Graph.Initializer.Where(t => t.ExternalData.Count > 0), t => Assert.True(stored.ContainsKey(t.Name), t.Name));
        Assert.Equal([CausalLmContract.DataFile], Directory.GetFiles(baked, "*.data").Select(Path.GetFileName));

        var added = inCache.Graph.Node.Select(n => n.Name).Except(reference.Graph.Node.Select(n => n.Name)).ToList();
        Assert.All(added, n => Assert.True(n.Contains("prompt_cache", StringComparison.Ordinal) || n.Contains("prompt_mask", StringComparison.Ordinal) || n.Contains("position_ids", StringComparison.Ordinal), n));
        // six ops bring the prefix into the caches (for every layer at once), one extends the mask; GPT-2 and LLaMA also
        // compute positions; where MultiHeadAttention appends to the cache itself, one Concat per cache puts the prefix
        // in front of the step's keys or values
        Assert.True(added.Count <= 16 + (fused ? 2 * layers : 0), $"{added.Count} nodes added");
        Assert.DoesNotContain(inCache.Graph.Node, n => n.OpType == "MatMul" && n.Input.Any(i => i.Contains("prompt", StringComparison.Ordinal)));
        var caches = inCache.Graph.Output.Select(o => o.Name).Where(n => n.StartsWith("present.", StringComparison.Ordinal)).ToList();
        Assert.Equal(2 * layers, caches.Count);
        foreach (var present in caches)
        {
            var producer = inCache.Graph.Node.Single(n => n.Output.Contains(present));
            var past = present.Replace("present.", "past_key_values.");
            if (producer.OpType == "MultiHeadAttention")
            {
                // present = [past, this step's]; this step's keys or values are [prefix (first step only), new]
                bool key = present.EndsWith(".key", StringComparison.Ordinal);
                Assert.Equal(past, producer.Input[key ? 6 : 7]);
                var concat = inCache.Graph.Node.Single(n => n.Output.Contains(producer.Input[key ? 1 : 2]));
                Assert.Equal("Concat", concat.OpType);
                Assert.Equal(2, concat.Input.Count);
                Assert.Contains("prompt_cache", concat.Input[0], StringComparison.Ordinal);
                Assert.Equal(1, concat.Attribute.Single(a => a.Name == "axis").I);
                continue;
            }
            Assert.Equal("Concat", producer.OpType);
            Assert.Equal(3, producer.Input.Count);
            Assert.Contains("prompt_cache", producer.Input[0], StringComparison.Ordinal);
            Assert.Equal(past, producer.Input[1]);
        }
    }

    [Fact]
    public void T5_soft_prompt_export_keeps_the_decoder_contract_and_prefix_export_keeps_the_encoder()
    {
        var prompt = Export("t5", "prompt_tuning_random");
        var prefix = Export("t5", "prefix");
        try
        {
            var decoder = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(prompt, Seq2SeqContract.DecoderFile)));
            var mask = decoder.Graph.Input.Single(i => i.Name == Seq2SeqContract.EncoderAttentionMask);
            Assert.Equal(Seq2SeqInterface.EncoderSequence, mask.Type.TensorType.Shape.Dim[1].DimParam);
            var cross = decoder.Graph.Input.Single(i => i.Name == Seq2SeqContract.PastCrossKey(0));
            Assert.Equal(Seq2SeqInterface.PromptedEncoderSequence, cross.Type.TensorType.Shape.Dim[2].DimParam);

            // prefix tuning leaves the encoder's interface alone: the standard check ran at export
            using var runner = Seq2SeqForward.Open(prefix);
            var encoded = runner.Encode([5, 7, 9], [1, 1, 1], 1);
            Assert.Equal(3, encoded.Length);
        }
        finally
        {
            Directory.Delete(prompt, true);
            Directory.Delete(prefix, true);
        }
    }

    [Theory]
    [InlineData("bloom", "prefix")]
    [InlineData("llama", "prompt_tuning_random")]
    [InlineData("t5", "prefix")]
    [InlineData("mt5", "p_tuning_mlp")]
    public void Fp16_export_of_a_baked_prompt_is_written_and_runs(string arch, string method)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"peft-onnx-bake-{Guid.NewGuid():N}");
        try
        {
            var result = OnnxExport.Export(Paths.Case(arch, "base_model"), Path.Combine(Paths.Case(arch, method), "adapter"), dir,
                new ExportOptions { DType = ExportDType.Fp16 });
            Assert.True(Directory.Exists(result.OutDir));
            var initializers = result.Models.SelectMany(m => ModelProto.Parser.ParseFrom(File.ReadAllBytes(m.ModelPath)).Graph.Initializer);
            Assert.Contains(initializers, t => t.Name.StartsWith("prompt.", StringComparison.Ordinal) && t.DataType == (int)ElementType.Float16);
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    /// <summary>Exports base + fixture adapter into a fresh folder (checked with ORT) and returns it.</summary>
    internal static string Export(string arch, string method, bool verify = true)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"peft-onnx-bake-{Guid.NewGuid():N}");
        OnnxExport.Export(Paths.Case(arch, "base_model"), Path.Combine(Paths.Case(arch, method), "adapter"), dir, new ExportOptions { Verify = verify });
        return dir;
    }
}
