using Peft.Onnx.Core.Architectures;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// Whether a prompt-learning config, sizes filled for the base, can be put where its method puts it: a soft prompt
/// in front of the input embeddings (token_dim is their width), a prefix into the attention cache (heads and head
/// size are the cache's, one key/value group per layer). An encoder-decoder's prefix may have more groups than the
/// decoder has layers (PEFT's default num_layers is the encoder's): transformers zips the decoder blocks with the
/// groups, so the first num_decoder_layers are used and the rest ignored.
/// </summary>
public static class PromptFit
{
    public static void Check(PromptLearningConfig filled, Architecture arch)
    {
        if (filled is PrefixTuningConfig prefix) CheckPrefix(prefix, arch);
        else CheckSoftPrompt(filled, arch);
    }

    private static void CheckSoftPrompt(PromptLearningConfig c, Architecture arch)
    {
        var width = arch.Parameters.First(p => p.Name == arch.WordEmbeddings).Shape[1];
        if (c.TokenDim != width)
            throw new PeftOnnxException($"{c.SourcePath}: token_dim = {c.TokenDim} but {arch.ClassName}'s input embeddings are {width} wide (virtual tokens are prepended to them)");
    }

    private static void CheckPrefix(PrefixTuningConfig c, Architecture arch)
    {
        var d = arch.Config.Dimensions;
        int heads = c.NumAttentionHeads!.Value, dim = c.TokenDim!.Value, layers = c.NumLayers!.Value, sub = c.NumTransformerSubmodules!.Value;
        var where = c.SourcePath;
        if (dim % heads != 0)
            throw new PeftOnnxException($"{where}: token_dim = {dim} is not a multiple of num_attention_heads = {heads} (each prefix row splits into heads x head_dim)");
        if (heads != d.NumKeyValueHeads || dim / heads != d.HeadDim)
            throw new PeftOnnxException($"{where}: token_dim = {dim} and num_attention_heads = {heads} give prefixes of {heads} heads x {dim / heads}, but {arch.ClassName} caches {d.NumKeyValueHeads} heads x {d.HeadDim} (set token_dim = {d.NumKeyValueHeads * d.HeadDim} and num_attention_heads = {d.NumKeyValueHeads})");
        if (arch.Config.IsEncoderDecoder)
        {
            if (sub != 2)
                throw new PeftOnnxException($"{where}: num_transformer_submodules = {sub}, but an encoder-decoder's prefix needs 2 (self- and cross-attention per decoder layer; task_type SEQ_2_SEQ_LM)");
            if (layers < d.NumDecoderLayers)
                throw new PeftOnnxException($"{where}: num_layers = {layers} gives prefixes for {layers} decoder layers but {arch.ClassName} has {d.NumDecoderLayers}");
        }
        else
        {
            if (sub != 1)
                throw new PeftOnnxException($"{where}: num_transformer_submodules = {sub}, but a decoder-only model's prefix needs 1 (task_type CAUSAL_LM)");
            if (layers != d.NumLayers)
                throw new PeftOnnxException($"{where}: num_layers = {layers} but {arch.ClassName} has {d.NumLayers} layers");
        }
    }
}
