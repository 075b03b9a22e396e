package android.widget;

import android.view.View;

public class TextView extends View {
    public CharSequence getText() { throw new UnsupportedOperationException("stub"); }

    public final void setText(CharSequence text) { throw new UnsupportedOperationException("stub"); }
}
