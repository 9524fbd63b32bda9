using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Generation;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Models;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Models;

/// <summary>T5/mT5 beyond the fixture parity: cache, other shapes, relative position buckets, counts from configs.</summary>
public class T5ModelTests
{
    // ------------------------------------------------------------------ (1) cache = full forward

    [Theory]
    [InlineData("t5")]
    [InlineData("mt5")]
    public void Decoding_step_by_step_with_the_cache_matches_the_full_decoder(string arch)
    {
        using var reference = new Reference(arch);
        using var model = (T5ForConditionalGeneration)ModelLoader.Load(Paths.Case(arch, "base_model"));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = tensor(reference.Inputs.ReadInt64("input_ids"), reference.Shape("input_ids"));
        var mask = tensor(reference.Inputs.ReadInt64("attention_mask"), reference.Shape("attention_mask"));
        AssertCacheMatchesFull(model, ids, mask, decoderLength: 5);
    }

    [Fact]
    public void A_prefix_past_extends_self_attention_and_a_cross_prefix_of_another_length_is_recomputed()
    {
        using var model = (T5ForConditionalGeneration)ModelLoader.Load(Paths.Case("t5", "base_model"));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var c = (T5Config)model.Config;
        const int batch = 2, prefix = 3, source = 4;
        manual_seed(7);
        var ids = randint(2, c.VocabSize, [batch, source], dtype: int64);
        var decoderIds = randint(2, c.VocabSize, [batch, 4], dtype: int64);
        var encoded = model.Encode(ids, null);

        KvCache Prefix(bool withCross)
        {
            var cache = new KvCache();
            for (int i = 0; i < c.DecoderLayers; i++)
            {
                cache.Self.Add((randn(batch, c.NumHeads, prefix, c.DKv), randn(batch, c.NumHeads, prefix, c.DKv)));
                if (withCross) cache.Cross.Add((randn(batch, c.NumHeads, prefix, c.DKv), randn(batch, c.NumHeads, prefix, c.DKv)));
            }
            return cache;
        }

        using var withCross = Prefix(withCross: true);
        using var selfOnly = new KvCache();
        selfOnly.Self.AddRange(withCross.Self);
        var a = model.Forward(new Seq2SeqLmInput(null, DecoderInputIds: decoderIds, EncoderHiddenStates: encoded, PastKeyValues: withCross, UseCache: true));
        var b = model.Forward(new Seq2SeqLmInput(null, DecoderInputIds: decoderIds, EncoderHiddenStates: encoded, PastKeyValues: selfOnly));
        var none = model.Forward(new Seq2SeqLmInput(null, DecoderInputIds: decoderIds, EncoderHiddenStates: encoded));
        selfOnly.Self.Clear(); // owned by withCross

        // transformers ignores a cross "past" whose length is not the encoder's (prefix tuning) ...
        Assert.True(allclose(a.Logits, b.Logits, rtol: 0, atol: 1e-6));
        // ... while the self-attention prefix changes the output,
        Assert.False(allclose(a.Logits, none.Logits, rtol: 0, atol: 1e-3));
        // and the present self cache is prefix + new positions, the cross cache the encoder's keys.
        Assert.Equal(new long[] { batch, c.NumHeads, prefix + 4, c.DKv }, a.PresentKeyValues!.Self[0].Key.shape);
        Assert.Equal(new long[] { batch, c.NumHeads, source, c.DKv }, a.PresentKeyValues.Cross[0].Key.shape);
        a.PresentKeyValues.Dispose();

        // A prefix that the decoder mask hides entirely is the same as no prefix.
        var hidden = cat([zeros(batch, prefix, dtype: int64), ones(batch, 4, dtype: int64)], 1);
        var masked = model.Forward(new Seq2SeqLmInput(null, DecoderInputIds: decoderIds, DecoderAttentionMask: hidden,
            EncoderHiddenStates: encoded, PastKeyValues: withCross));
        Assert.True(allclose(masked.Logits, none.Logits, rtol: 0, atol: 1e-4));
    }

    private static void AssertCacheMatchesFull(T5ForConditionalGeneration model, Tensor ids, Tensor mask, int decoderLength)
    {
        var vocab = ((T5Config)model.Config).VocabSize;
        manual_seed(3);
        var decoderIds = randint(2, vocab, [ids.shape[0], decoderLength], dtype: int64);
        decoderIds[.., 0] = model.DecoderStartTokenId;
        var encoded = model.Encode(ids, mask);
        var full = model.Forward(new Seq2SeqLmInput(null, mask, DecoderInputIds: decoderIds, EncoderHiddenStates: encoded)).Logits;

        KvCache? cache = null;
        for (int t = 0; t < decoderLength; t++)
        {
            var step = model.Forward(new Seq2SeqLmInput(null, mask, DecoderInputIds: decoderIds[.., t..(t + 1)],
                EncoderHiddenStates: encoded, PastKeyValues: cache, UseCache: true));
            var previous = cache;
            cache = step.PresentKeyValues!;
            previous?.Dispose();
            Assert.Equal(t + 1, cache.Length);
            Assert.Equal(model.Architecture.Config.Dimensions.NumDecoderLayers, cache.Cross.Count);
            var diff = (step.Logits[.., 0, ..] - full[.., t, ..]).abs().max().item<float>();
            Assert.True(diff < 1e-4, $"step {t}: max |cached - full| = {diff}");
        }
        cache?.Dispose();
    }

    // ------------------------------------------------------------------ (2) other shapes, random weights

    [Theory]
    [InlineData("t5", "gated-gelu")]
    [InlineData("mt5", "gated-gelu")]
    [InlineData("t5", "relu")]
    [InlineData("t5", "gated-silu")]
    public void Other_shapes_build_run_and_count(string modelType, string feedForward)
    {
        // 3 encoder layers, 1 decoder layer, 4 heads of d_kv 8 (inner 32) on d_model 24.
        const int vocab = 50, dModel = 24, dKv = 8, heads = 4, dFf = 40, layers = 3, decoderLayers = 1, buckets = 8;
        var dir = Paths.TempDir("t5-shapes");
        try
        {
            File.WriteAllText(Path.Combine(dir, "config.json"), $$"""
                {"model_type": "{{modelType}}", "vocab_size": {{vocab}}, "d_model": {{dModel}}, "d_kv": {{dKv}}, "d_ff": {{dFf}},
                 "num_layers": {{layers}}, "num_decoder_layers": {{decoderLayers}}, "num_heads": {{heads}},
                 "relative_attention_num_buckets": {{buckets}}, "relative_attention_max_distance": 20,
                 "feed_forward_proj": "{{feedForward}}", "dropout_rate": 0.1, "pad_token_id": 0, "eos_token_id": 1,
                 "decoder_start_token_id": 0}
                """);
            var config = (T5Config)ModelConfig.Load(dir);
            var architecture = (T5Architecture)Architecture.For(config);
            var random = new Random(11);
            var tensors = architecture.Parameters.Select(p => TensorData.FromFloat32(p.Name, p.Shape,
                Enumerable.Range(0, (int)p.ElementCount).Select(_ => p.Name.EndsWith("layer_norm.weight") ? 1f : (float)(random.NextDouble() - 0.5)).ToArray())).ToList();
            // transformers' checkpoints may carry the stacks' embed_tokens: tied to shared, ignored on load.
            var shared = tensors.First(t => t.Name == "shared.weight");
            tensors.Add(shared with { Name = "encoder.embed_tokens.weight" });
            SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), tensors);

            bool gated = feedForward.StartsWith("gated-");
            bool tied = modelType == "t5";
            long inner = heads * dKv, ff = (gated ? 3 : 2) * (long)dModel * dFf;
            long expected = vocab * dModel
                + layers * (4 * dModel * inner + ff + 2 * dModel) + buckets * heads + dModel
                + decoderLayers * (8 * dModel * inner + ff + 3 * dModel) + buckets * heads + dModel
                + (tied ? 0 : vocab * dModel);
            Assert.Equal(expected, architecture.CountParameters());
            Assert.Equal(tied ? "T5ForConditionalGeneration" : "MT5ForConditionalGeneration", architecture.ClassName);
            Assert.Equal(2 * layers + (gated ? 1 : 0) * layers + 4 * layers + (8 + 2 + (gated ? 1 : 0)) * decoderLayers + 1, architecture.Linears.Count);
            Assert.Equal("lm_head", architecture.Linears[^1].Path);
            Assert.StartsWith("encoder.block.0.", architecture.Linears[0].Path);

            using var model = (T5ForConditionalGeneration)ModelLoader.Load(dir, out var report);
            Assert.Empty(report.Unexpected);
            Assert.Equal(expected, model.Parameters.CountElements());

            using var scope = NewDisposeScope();
            var ids = tensor(new long[] { 5, 9, 13, 2, 7, 30, 8, 3, 0, 0 }, [2, 5]);
            var mask = tensor(new long[] { 1, 1, 1, 1, 1, 1, 1, 1, 0, 0 }, [2, 5]);
            var labels = tensor(new long[] { 4, 6, 1, 3, -100, -100 }, [2, 3]);
            // Dropout is on while training: the loss must still be finite, and gradients reach the
            // shared embedding and both relative position tables (the base weights are frozen unless asked).
            string[] watched = ["shared.weight", "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"];
            foreach (var name in watched) model.Parameters[name].requires_grad_(true);
            model.Training = true;
            var trained = model.Forward(new Seq2SeqLmInput(ids, mask, Labels: labels));
            Assert.True(float.IsFinite(trained.Loss!.item<float>()));
            trained.Loss.backward();
            model.Training = false;
            foreach (var name in watched)
            {
                Assert.True(model.Parameters[name].grad is { } g && g.abs().sum().item<float>() > 0, $"no gradient for {name}");
                model.Parameters[name].requires_grad_(false);
            }

            using (no_grad())
            {
                var output = model.Forward(new Seq2SeqLmInput(ids, mask, Labels: labels));
                Assert.Equal(new long[] { 2, 3, vocab }, output.Logits.shape);
                Assert.True(float.IsFinite(output.Loss!.item<float>()));
                AssertCacheMatchesFull(model, ids, mask, decoderLength: 4);
            }
            var generated = GreedySearch.Generate(model, ids, mask, new GreedyOptions(4, [1], 0));
            Assert.Equal(2, generated.shape[0]);
            Assert.True(generated.shape[1] is >= 2 and <= 5);
            Assert.Equal(0, generated[0, 0].item<long>());
        }
        finally
        {
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }

    [Fact]
    public void Shift_right_prepends_the_start_token_and_pads_ignored_labels()
    {
        using var model = (T5ForConditionalGeneration)ModelLoader.Load(Paths.Case("t5", "base_model"));
        using var scope = NewDisposeScope();
        var shifted = model.ShiftRight(tensor(new long[] { 5, 6, 7, 8, 9, -100 }, [2, 3]));
        Assert.Equal(new long[] { 0, 5, 6, 0, 8, 9 }, shifted.data<long>().ToArray());
    }

    [Fact]
    public void Embeddings_in_place_of_ids_give_the_same_logits_for_encoder_and_decoder()
    {
        using var reference = new Reference("mt5");
        using var model = (T5ForConditionalGeneration)ModelLoader.Load(Paths.Case("mt5", "base_model"));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = tensor(reference.Inputs.ReadInt64("input_ids"), reference.Shape("input_ids"));
        var mask = tensor(reference.Inputs.ReadInt64("attention_mask"), reference.Shape("attention_mask"));
        var labels = tensor(reference.Inputs.ReadInt64("labels"), reference.Shape("labels"));
        var byIds = model.Forward(new Seq2SeqLmInput(ids, mask, Labels: labels));
        // PEFT prompt tuning feeds inputs_embeds (and, for seq2seq, decoder_inputs_embeds).
        var byEmbeds = model.Forward(new Seq2SeqLmInput(null, mask, InputsEmbeds: model.EmbedTokens(ids), Labels: labels,
            DecoderInputsEmbeds: model.EmbedTokens(model.ShiftRight(labels))));
        Assert.True(allclose(byIds.Logits, byEmbeds.Logits, rtol: 0, atol: 1e-6));
        Assert.Equal(byIds.Loss!.item<float>(), byEmbeds.Loss!.item<float>());
    }

    // ------------------------------------------------------------------ (3) relative position buckets

    // Hand-checked with num_buckets 32, max_distance 128 (relative position = memory - query):
    // bidirectional: 16 buckets per direction, positive offsets at +16; 8 exact, then
    // 8 + floor(log(|r|/8) / log(16) * 8), capped at 15.
    [Theory]
    [InlineData(0, 0)]
    [InlineData(-1, 1)]
    [InlineData(1, 17)]
    [InlineData(-7, 7)]
    [InlineData(7, 23)]
    [InlineData(-8, 8)]
    [InlineData(-9, 8)]     // log(9/8)/log16*8 = 0.34
    [InlineData(-12, 9)]    // log(1.5)/log16*8 = 1.17
    [InlineData(20, 26)]    // 16 + 8 + floor(2.64)
    [InlineData(-100, 15)]  // 8 + floor(7.29)
    [InlineData(-128, 15)]
    [InlineData(128, 31)]
    [InlineData(-1000, 15)]
    [InlineData(1000, 31)]
    public void Bidirectional_buckets(long relative, long bucket) =>
        Assert.Equal(bucket, Bucket(relative, bidirectional: true));

    // unidirectional (decoder): future offsets -> 0; 16 exact, then 16 + floor(log(d/16) / log(8) * 16), capped at 31.
    [Theory]
    [InlineData(0, 0)]
    [InlineData(5, 0)]
    [InlineData(1000, 0)]
    [InlineData(-1, 1)]
    [InlineData(-15, 15)]
    [InlineData(-16, 16)]
    [InlineData(-20, 17)]   // log(1.25)/log8*16 = 1.72
    [InlineData(-32, 21)]   // 5.33
    [InlineData(-64, 26)]   // 10.67
    [InlineData(-100, 30)]  // 14.10
    [InlineData(-500, 31)]
    public void Unidirectional_buckets(long relative, long bucket) =>
        Assert.Equal(bucket, Bucket(relative, bidirectional: false));

    private static long Bucket(long relative, bool bidirectional)
    {
        using var scope = NewDisposeScope();
        return T5ForConditionalGeneration.RelativePositionBucket(tensor(new[] { relative }), bidirectional, 32, 128)[0].item<long>();
    }

    // ------------------------------------------------------------------ counts from configs alone

    // PEFT's guides print "all params" with the adapter included: t5-large prefix tuning 738,651,136 - 983,040
    // trainable; mt0-large IA3 1,229,863,936 - 282,624 trainable.
    [Theory]
    [InlineData("t5-large", 737_668_096L, "T5ForConditionalGeneration")]
    [InlineData("mt0-large", 1_229_581_312L, "MT5ForConditionalGeneration")]
    public void Counts_real_configs_without_weights(string name, long expected, string className)
    {
        var architecture = Architecture.For(ModelConfig.Load(Path.Combine(Paths.DocConfigs, name)));
        Assert.Equal(expected, architecture.CountParameters());
        Assert.Equal(className, architecture.ClassName);
        Assert.Equal("shared.weight", architecture.WordEmbeddings);
    }
}
