namespace Peft.Onnx.Core.Data;

/// <summary>
/// How a row becomes a prompt, as the PEFT guides write it: f"{text_column} : {text} Label : ".
/// The template must contain "{text}"; nothing else is substituted.
/// </summary>
public sealed record PromptTemplate(string Template)
{
    public const string Placeholder = "{text}";

    public static PromptTemplate Parse(string template, string argument = "--template")
    {
        if (!template.Contains(Placeholder, StringComparison.Ordinal))
            throw new PeftOnnxException($"{argument}: template \"{template}\" has no {Placeholder} placeholder (e.g. \"Tweet text : {{text}} Label : \")");
        return new PromptTemplate(template);
    }

    public string Format(string text) => Template.Replace(Placeholder, text, StringComparison.Ordinal);
}
