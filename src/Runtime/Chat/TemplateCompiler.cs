using System.Text;

namespace Peft.Onnx.Runtime.Chat;

/// <summary>
/// Compiles segments into one render action: text, {{ expression }}, and the statements chat templates use:
/// if / elif / else, for (with else, a trailing if filter and unpacking), set (a name, a namespace attribute, or a
/// block), generation blocks (rendered as their content).
/// </summary>
internal sealed class TemplateCompiler
{
    private readonly List<TemplateSegment> _segments;
    private int _at;

    private TemplateCompiler(List<TemplateSegment> segments) => _segments = segments;

    public static Action<TemplateScope, StringBuilder> Compile(string template)
    {
        var compiler = new TemplateCompiler(TemplateSegmenter.Split(template));
        var (body, end) = compiler.Block();
        if (end != null) throw new TemplateException($"'{{% {end} %}}' without its opening tag");
        return body;
    }

    /// <summary>Segments up to a statement that ends the enclosing block (returned with its keyword, the parser left after it).</summary>
    private (Action<TemplateScope, StringBuilder> Body, string? End) Block(params string[] ends)
    {
        var (body, end, parser) = BlockWithParser(ends);
        parser?.ExpectEnd();
        return (body, end);
    }

    private (Action<TemplateScope, StringBuilder> Body, string? End, ExpressionParser? Parser) BlockWithParser(params string[] ends)
    {
        var parts = new List<Action<TemplateScope, StringBuilder>>();
        while (_at < _segments.Count)
        {
            var segment = _segments[_at++];
            switch (segment.Kind)
            {
                case TemplateSegmentKind.Text:
                    var text = segment.Text;
                    parts.Add((_, o) => o.Append(text));
                    break;
                case TemplateSegmentKind.Output:
                    var p = new ExpressionParser(segment.Text);
                    var value = p.Expression();
                    p.ExpectEnd();
                    parts.Add((s, o) => o.Append(TemplateValues.Text(value(s))));
                    break;
                default:
                    var parser = new ExpressionParser(segment.Text);
                    var keyword = parser.Name();
                    if (ends.Contains(keyword)) return (Sequence(parts), keyword, parser);
                    parts.Add(Statement(keyword, parser));
                    break;
            }
        }
        if (ends.Length > 0) throw new TemplateException($"a block is never closed (expected {string.Join(" or ", ends.Select(e => $"'{{% {e} %}}'"))})");
        return (Sequence(parts), null, null);
    }

    private static Action<TemplateScope, StringBuilder> Sequence(List<Action<TemplateScope, StringBuilder>> parts) => (s, o) =>
    {
        foreach (var part in parts) part(s, o);
    };

    private Action<TemplateScope, StringBuilder> Statement(string keyword, ExpressionParser p) => keyword switch
    {
        "if" => If(p),
        "for" => For(p),
        "set" => Set(p),
        "generation" => Generation(p),
        _ => throw new TemplateException($"the statement '{keyword}' is not supported"),
    };

    private Action<TemplateScope, StringBuilder> If(ExpressionParser p)
    {
        var branches = new List<(Func<TemplateScope, object?> Condition, Action<TemplateScope, StringBuilder> Body)>();
        Action<TemplateScope, StringBuilder>? otherwise = null;
        var condition = p.Expression();
        p.ExpectEnd();
        while (true)
        {
            var (body, end, next) = BlockWithParser("elif", "else", "endif");
            if (condition != null) branches.Add((condition, body));
            else otherwise = body;
            if (end == "endif") break;
            if (end == "elif")
            {
                if (condition == null) throw new TemplateException("'elif' after 'else'");
                condition = next!.Expression();
                next.ExpectEnd();
            }
            else
            {
                if (condition == null) throw new TemplateException("two 'else' in one 'if'");
                condition = null;
            }
        }
        return (s, o) =>
        {
            foreach (var (c, b) in branches)
                if (TemplateValues.Truthy(c(s))) { b(s, o); return; }
            otherwise?.Invoke(s, o);
        };
    }

    private Action<TemplateScope, StringBuilder> For(ExpressionParser p)
    {
        var targets = p.Targets();
        if (!p.TakeName("in")) throw new TemplateException("expected 'in' in a for statement");
        var iterable = p.Or();
        var filter = p.TakeName("if") ? p.Or() : null;
        p.TakeName("recursive");
        p.ExpectEnd();
        var (body, end) = Block("else", "endfor");
        var empty = end == "else" ? Block("endfor").Body : null;
        return (s, o) =>
        {
            var all = TemplateValues.Iterate(iterable(s)).ToList();
            if (filter != null)
                all = all.Where(item => { s.Push(); Bind(s, targets, item); var keep = TemplateValues.Truthy(filter(s)); s.Pop(); return keep; }).ToList();
            if (all.Count == 0) { empty?.Invoke(s, o); return; }
            var loop = new LoopInfo(all);
            s.Push();
            try
            {
                for (int i = 0; i < all.Count; i++)
                {
                    loop.Index0 = i;
                    s.Set("loop", loop);
                    Bind(s, targets, all[i]);
                    body(s, o);
                }
            }
            finally
            {
                s.Pop();
            }
        };
    }

    private static void Bind(TemplateScope s, List<string> targets, object? item)
    {
        if (targets.Count == 1) { s.Set(targets[0], item); return; }
        var values = TemplateValues.Iterate(item).ToList();
        if (values.Count != targets.Count) throw new TemplateException($"cannot unpack {values.Count} values into {targets.Count} names");
        for (int i = 0; i < targets.Count; i++) s.Set(targets[i], values[i]);
    }

    private Action<TemplateScope, StringBuilder> Set(ExpressionParser p)
    {
        var name = p.Name();
        string? attribute = p.TakeOp(".") ? p.Name() : null;
        if (p.AtEnd && attribute == null)
        {
            var (body, _) = Block("endset");
            return (s, _) =>
            {
                var captured = new StringBuilder();
                body(s, captured);
                s.Set(name, captured.ToString());
            };
        }
        p.ExpectOp("=");
        var value = p.Expression();
        p.ExpectEnd();
        if (attribute == null) return (s, _) => s.Set(name, value(s));
        return (s, _) =>
        {
            if (s.Get(name) is not TemplateNamespace ns) throw new TemplateException($"'{name}' is not a namespace (set {name}.{attribute})");
            ns[attribute] = value(s);
        };
    }

    private Action<TemplateScope, StringBuilder> Generation(ExpressionParser p)
    {
        p.ExpectEnd();
        return Block("endgeneration").Body;
    }
}
